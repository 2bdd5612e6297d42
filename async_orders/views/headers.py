"""What a request asks for besides the order, read from its headers and query:
the ETag and ``If-None-Match``, ``?wait=``, ``Prefer: respond-async`` and
``Idempotency-Key``.

The ETag is computed from the stored row, not from the serialized representation, so
``If-None-Match`` can be answered with ``304`` for the cost of the one query that
finds the order (and checks ownership) and a hash.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Any

from django.utils.http import parse_etags

from async_orders.conf import IPNetwork, conf
from async_orders.exceptions import InvalidIdempotencyKey, InvalidWait
from async_orders.models import SHOWN_FIELDS, Order

#: The header's value: printable ASCII, as the IETF draft's examples (UUIDs) are.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def order_etag(order: Order, request: Any) -> str:
    """A strong ETag: changes whenever anything the representation shows does.

    It hashes the shown columns (:data:`~async_orders.models.SHOWN_FIELDS`, all a
    poll loads) and the site's address, because the representation holds absolute
    URLs; a heartbeat or other bookkeeping neither wakes long-polls nor breaks
    ``If-None-Match``.
    """
    values: list[Any] = [getattr(order, name) for name in SHOWN_FIELDS]
    values.append(f"{request.scheme}://{request.get_host()}")
    if order.callback_url:
        values.append(order.webhook_deliveries.count())
    values.append(order.rerun_ids)  # a re-run placed changes the failed order's links
    digest = hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def etag_matches(request: Any, etag: str) -> bool:
    """``If-None-Match`` names ``etag`` (or ``*``); compared weakly, as RFC 9110 says."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = {tag.removeprefix("W/") for tag in parse_etags(header)}
    return "*" in tags or etag in tags


def requested_wait(request: Any) -> float:
    """Seconds the client asked to wait (``?wait=``), cut to ``LONG_POLL_MAX_WAIT``."""
    raw = request.GET.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise InvalidWait(raw) from None
    if not 0 <= wait < float("inf"):
        raise InvalidWait(raw)
    return min(wait, conf.LONG_POLL_MAX_WAIT)


def prefers_respond_async(request: Any) -> bool:
    """RFC 7240: ``respond-async`` is among the ``Prefer`` header's preferences."""
    preferences = request.headers.get("Prefer", "").split(",")
    tokens = (preference.split(";")[0].split("=")[0] for preference in preferences)
    return any(token.strip().lower() == "respond-async" for token in tokens)


def idempotency_key(request: Any) -> str:
    """The ``Idempotency-Key`` header, or "" when none was sent; 400 when malformed."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return ""
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidIdempotencyKey()
    return key


def client_address(request: Any) -> str:
    """The client's IP address: the peer's, unless the peer is one of
    ``TRUSTED_PROXIES``; then the nearest address of ``X-Forwarded-For`` that is not a
    trusted proxy's, read from the right, where each proxy appends the address it saw.
    Addresses further left were written by the client and prove nothing."""
    address = str(request.META.get("REMOTE_ADDR", ""))
    proxies = conf.TRUSTED_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    while _is_among(address, proxies) and forwarded:
        hop = forwarded.pop().strip()
        if not hop:
            break
        address = hop
    return address


def _is_among(address: str, networks: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
