"""callback_url: which URLs are refused at order time, signing, the system check.
Delivery through a real worker is in test_waiting.py."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from rest_framework.test import APIClient

from async_orders.models import Order, OrderStatus, WebhookDelivery
from async_orders.signing import sign, verify_signature
from async_orders.webhooks import deliver_webhook, retry_delay
from tests.helpers import WebhookReceiver, place

pytestmark = pytest.mark.django_db

SECRET = "s3cret"


@pytest.fixture
def public_only(settings) -> None:
    """The production default: allowed hosts, and no private addresses."""
    settings.ASYNC_ORDERS = {
        **settings.ASYNC_ORDERS,
        "WEBHOOK_ALLOWED_HOSTS": ["*"],
        "WEBHOOK_ALLOW_PRIVATE": False,
    }


def test_an_allowed_callback_url_is_stored_and_shown(api: APIClient) -> None:
    response = place(api, "echo", {"callback_url": "http://127.0.0.1:9/hook"})

    assert response.status_code == 302
    assert Order.objects.get().callback_url == "http://127.0.0.1:9/hook"
    assert response.json()["callback"] == {"url": "http://127.0.0.1:9/hook", "deliveries": []}


def test_a_host_outside_the_allowlist_is_400_naming_the_field(api: APIClient) -> None:
    response = place(api, "echo", {"callback_url": "https://evil.example.net/hook"})

    assert response.status_code == 400
    assert "not among the hosts allowed" in response.json()["fields"]["callback_url"][0]
    assert not Order.objects.exists()


@pytest.mark.usefixtures("public_only")
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ],
)
def test_private_and_loopback_addresses_are_400_unless_allowed(api: APIClient, url: str) -> None:
    response = place(api, "echo", {"callback_url": url})

    assert response.status_code == 400
    assert "private, loopback or reserved" in response.json()["fields"]["callback_url"][0]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "not a url"])
def test_a_callback_url_must_be_http(api: APIClient, url: str) -> None:
    response = place(api, "echo", {"callback_url": url})

    assert response.status_code == 400
    assert "callback_url" in response.json()["fields"]


def test_a_signature_verifies_only_for_its_body_secret_and_time() -> None:
    header = sign(SECRET, 1_000_000, b'{"id": 1}')

    assert verify_signature(SECRET, b'{"id": 1}', header, now=1_000_010)
    assert not verify_signature(SECRET, b'{"id": 2}', header, now=1_000_010)
    assert not verify_signature("other", b'{"id": 1}', header, now=1_000_010)
    assert not verify_signature(SECRET, b'{"id": 1}', header, now=1_000_000 + 301)
    assert not verify_signature(SECRET, b'{"id": 1}', "v1=abc", now=1_000_010)


def test_the_retry_delay_doubles(settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "WEBHOOK_RETRY_BACKOFF": 2}

    assert [retry_delay(attempt) for attempt in (1, 2, 3)] == [2, 4, 8]


def test_webhooks_without_a_secret_are_a_system_check_error(settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "WEBHOOK_SECRET": ""}

    assert "async_orders.E003" in [message.id for message in run_checks()]


def test_the_admin_shows_the_delivery_attempts(client) -> None:
    admin = User.objects.create_superuser("admin", password="pw")
    order = Order.objects.create(view_name="echo", origin="http://testserver")
    WebhookDelivery.objects.create(order=order, attempt=1, response_status=500, error="HTTP 500")
    client.force_login(admin)

    page = client.get(f"/admin/async_orders/order/{order.pk}/change/")

    assert page.status_code == 200
    assert b"HTTP 500" in page.content


# --- addresses embedding an IPv4 address (issue 11, item 6) ---------------------------


@pytest.mark.usefixtures("public_only")
@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a00:7::1]/hook",  # 6to4 of 10.0.0.7
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
        "http://[::7f00:1]/hook",  # IPv4-compatible (deprecated)
        "http://[64:ff9b:1::5db8:d822]/hook",  # local-use NAT64: a private network's
    ],
)
def test_an_ipv6_address_embedding_a_private_ipv4_is_judged_by_it(api: APIClient, url: str) -> None:
    response = place(api, "echo", {"callback_url": url})

    assert response.status_code == 400
    assert "private, loopback or reserved" in response.json()["fields"]["callback_url"][0]


@pytest.mark.usefixtures("public_only")
@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::5db8:d822]/hook",  # NAT64 of 93.184.216.34
        "http://[2002:5db8:d822::1]/hook",  # 6to4 of 93.184.216.34
        "http://[2001:0:4136:e378:8000:63bf:a247:27dd]/hook",  # Teredo, client 93.184.216.34
    ],
)
def test_an_ipv6_address_embedding_a_public_ipv4_is_accepted(api: APIClient, url: str) -> None:
    assert place(api, "echo", {"callback_url": url}).status_code == 302


# --- a delivery connects to the address that was checked ------------------------------


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """hooks.example.com resolves to each address of this list in turn, the last one for
    good: DNS rebinding on demand. Other names resolve as usual."""
    answers: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.example.com":
            return real(host, port, *args, **kwargs)
        return real(answers.pop(0) if len(answers) > 1 else answers[0], port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection attempted, each refused."""
    attempted: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        attempted.append(address)
        raise ConnectionRefusedError(f"{address} refused the connection")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return attempted


def deliver_once(callback_url: str) -> WebhookDelivery:
    order = Order.objects.create(
        view_name="echo",
        origin="http://testserver",
        status=OrderStatus.COMPLETED,
        callback_url=callback_url,
    )
    deliver_webhook(str(order.pk))
    return order.webhook_deliveries.get()


@pytest.fixture
def one_attempt(settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "WEBHOOK_MAX_ATTEMPTS": 1}


@pytest.mark.usefixtures("public_only", "one_attempt")
def test_a_delivery_connects_to_the_address_it_checked_not_a_rebound_one(
    dns: list[str], connections: list[tuple[str, int]]
) -> None:
    dns.extend(["93.184.216.34", "127.0.0.1"])

    delivery = deliver_once("http://hooks.example.com/hook")

    assert connections == [("93.184.216.34", 80)]
    assert not delivery.delivered


@pytest.mark.usefixtures("one_attempt")
def test_a_pinned_delivery_keeps_the_host_name_in_the_host_header(
    dns: list[str], receiver: WebhookReceiver
) -> None:
    dns.append("127.0.0.1")
    port = receiver.server_address[1]

    delivery = deliver_once(f"http://hooks.example.com:{port}/hook?x=1")

    assert delivery.delivered
    headers, _ = receiver.received[0]
    assert headers["Host"] == f"hooks.example.com:{port}"


@pytest.mark.usefixtures("one_attempt")
def test_a_pinned_https_delivery_verifies_the_certificate_of_the_host_name(
    dns: list[str], receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns.append("127.0.0.1")
    server_names: list[str | None] = []

    def wrap_socket(context: Any, sock: Any, server_hostname: str | None = None, **kw: Any) -> Any:
        server_names.append(server_hostname)
        raise ssl.SSLError("the test stops here")

    monkeypatch.setattr(ssl.SSLContext, "wrap_socket", wrap_socket)

    delivery = deliver_once(f"https://hooks.example.com:{receiver.server_address[1]}/hook")

    assert server_names == ["hooks.example.com"]
    assert not delivery.delivered
