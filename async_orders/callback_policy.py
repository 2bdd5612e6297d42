"""Which callback URLs an order may name: checked when the order is placed (a 400
naming ``callback_url``) and again before every delivery.

Its host must match ``WEBHOOK_ALLOWED_HOSTS``, and unless ``WEBHOOK_ALLOW_PRIVATE`` it
must resolve to public addresses only, so an order cannot make the server call into
its own network. An IPv6 address that embeds an IPv4 one (NAT64, 6to4, Teredo,
IPv4-mapped) is judged by the IPv4 address. Validating a POST needs this and not the
delivery's Celery task, so the two live apart.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from django.http.request import validate_host

from async_orders.conf import conf

#: IPv6 prefixes whose last 32 bits are an IPv4 address: NAT64 (RFC 6052) and the
#: deprecated IPv4-compatible addresses.
IPV4_IN_LAST_32_BITS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
#: Local-use NAT64 (RFC 8215): it translates into a private network's addresses.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def check_callback_url(url: str) -> None:
    """Raise :class:`ValueError`, with a message for the client, unless ``url`` may be called."""
    parts = _allowed_parts(url)
    if not conf.WEBHOOK_ALLOW_PRIVATE:
        _checked_addresses(parts)


def callback_addresses(url: str) -> list[str]:
    """The addresses a delivery to ``url`` may connect to: its host resolved once, every
    answer checked. Raise :class:`ValueError` like :func:`check_callback_url`."""
    return _checked_addresses(_allowed_parts(url))


def _allowed_parts(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("Only http and https callback URLs are accepted.")
    if not validate_host(parts.hostname or "", conf.WEBHOOK_ALLOWED_HOSTS):
        raise ValueError(f"{parts.hostname or ''!r} is not among the hosts allowed for webhooks.")
    return parts


def _checked_addresses(parts: SplitResult) -> list[str]:
    host = parts.hostname or ""
    try:
        answers = socket.getaddrinfo(host, port_of(parts), type=socket.SOCK_STREAM)
    except OSError:
        raise ValueError(f"{host!r} does not resolve.") from None
    addresses = list(dict.fromkeys(str(answer[4][0]) for answer in answers))
    if not conf.WEBHOOK_ALLOW_PRIVATE and not all(map(is_public, addresses)):
        raise ValueError(f"{host!r} is a private, loopback or reserved address.")
    return addresses


def is_public(address: str) -> bool:
    """Whether ``address`` is globally reachable; an IPv6 address embedding an IPv4 one
    is judged by that (``64:ff9b::7f00:1`` reaches 127.0.0.1 through a NAT64 gateway)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global
    embedded = _embedded_ipv4(ip)
    if embedded:
        return all(ipv4.is_global for ipv4 in embedded)
    return ip.is_global and ip not in LOCAL_NAT64


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if any(ip in prefix for prefix in IPV4_IN_LAST_32_BITS):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour:
        return [ip.sixtofour]
    return list(ip.teredo or ())  # the Teredo server and client


def port_of(parts: SplitResult) -> int:
    """The port a request to ``parts`` goes to: its own, else its scheme's."""
    return parts.port or (443 if parts.scheme == "https" else 80)
