"""callback_url: which URLs are refused at order time, signing, the system check.
Delivery through a real worker is in test_waiting.py."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from rest_framework.test import APIClient

from async_orders.models import Order, WebhookDelivery
from async_orders.signing import sign, verify_signature
from async_orders.webhooks import retry_delay

pytestmark = pytest.mark.django_db

SECRET = "s3cret"


def place(api: APIClient, callback_url: str):
    return api.post("/async/echo/order/", {"callback_url": callback_url}, format="json")


@pytest.fixture
def public_only(settings) -> None:
    """The production default: allowed hosts, and no private addresses."""
    settings.ASYNC_ORDERS = {
        **settings.ASYNC_ORDERS,
        "WEBHOOK_ALLOWED_HOSTS": ["*"],
        "WEBHOOK_ALLOW_PRIVATE": False,
    }


def test_an_allowed_callback_url_is_stored_and_shown(api: APIClient) -> None:
    response = place(api, "http://127.0.0.1:9/hook")

    assert response.status_code == 302
    assert Order.objects.get().callback_url == "http://127.0.0.1:9/hook"
    assert response.json()["callback"] == {"url": "http://127.0.0.1:9/hook", "deliveries": []}


def test_a_host_outside_the_allowlist_is_400_naming_the_field(api: APIClient) -> None:
    response = place(api, "https://evil.example.net/hook")

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
    response = place(api, url)

    assert response.status_code == 400
    assert "private, loopback or reserved" in response.json()["fields"]["callback_url"][0]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "not a url"])
def test_a_callback_url_must_be_http(api: APIClient, url: str) -> None:
    response = place(api, url)

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
