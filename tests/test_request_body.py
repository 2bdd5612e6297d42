"""The order request's body: JSON only, bounded as it is read (chunked or not), never
silently dropped, and free of text no database can store (issue 11, items 3 and 5)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from rest_framework.test import APIClient

from async_orders.models import Order
from tests.factories import make_order

pytestmark = pytest.mark.django_db

PLACE = "/async/echo/order/"


def chunked(api: APIClient, body: bytes, *, terminated: bool = True) -> Any:
    """A POST as a WSGI server hands over a ``Transfer-Encoding: chunked`` body: no
    ``CONTENT_LENGTH``; ``wsgi.input_terminated`` when the server decodes the chunks."""
    stream = io.BytesIO(body)
    environ = {
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": stream,
        "wsgi.input_terminated": terminated,
    }
    response = api.generic("POST", PLACE, b"", content_type="application/json", **environ)
    response.stream = stream
    return response


def assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response.json()["code"] == code
    assert not Order.objects.exists()


# --- bounded as read, never dropped ----------------------------------------------------


def test_a_chunked_body_is_read_not_dropped(api: APIClient) -> None:
    response = chunked(api, b'{"data": {"a": 1}, "query": {"q": "x"}}')

    assert response.status_code == 302
    order = Order.objects.get()
    assert (order.data, order.query) == ({"a": 1}, {"q": "x"})


def test_a_chunked_body_over_the_limit_is_413_and_read_no_further(api: APIClient, settings) -> None:
    settings.ASYNC_ORDERS = {**settings.ASYNC_ORDERS, "MAX_BODY_BYTES": 100}

    response = chunked(api, b'{"data": "' + b"x" * 10_000 + b'"}')

    assert_refused(response, 413, "request_too_large")
    assert response.stream.tell() <= 101


def test_a_chunked_body_the_server_does_not_hand_over_is_411_not_dropped(
    api: APIClient,
) -> None:
    response = chunked(api, b'{"data": {"a": 1}}', terminated=False)

    assert_refused(response, 411, "length_required")
    assert "Content-Length" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_to_the_development_server_is_411_not_dropped(live_server: Any) -> None:
    response = requests.post(
        f"{live_server.url}{PLACE}",
        data=iter([b'{"data": ', b'{"a": 1}}']),
        headers={"Content-Type": "application/json"},
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 411
    assert not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_under_asgi_a_chunked_body_is_read_and_bounded(asgi_server: str) -> None:
    def post(*parts: bytes) -> requests.Response:
        return requests.post(
            f"{asgi_server}{PLACE}",
            data=iter(parts),
            headers={"Content-Type": "application/json"},
            allow_redirects=False,
            timeout=30,
        )

    placed = post(b'{"data": ', b'{"a": 1}}')
    too_large = post(b'{"data": "', *[b"x" * 65536] * 32, b'"}')

    assert placed.status_code == 302
    assert Order.objects.get(pk=placed.json()["id"]).data == {"a": 1}
    assert too_large.status_code == 413
    assert Order.objects.count() == 1


# --- application/json only ------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
def test_an_order_post_that_is_not_json_is_415_even_with_no_body(
    api: APIClient, content_type: str
) -> None:
    response = api.generic("POST", PLACE, b"", content_type=content_type)

    assert_refused(response, 415, "unsupported_media_type")
    assert "application/json" in response.json()["detail"]


def test_json_with_a_charset_parameter_is_accepted(api: APIClient) -> None:
    response = api.generic(
        "POST", PLACE, b'{"data": 1}', content_type="application/json; charset=utf-8"
    )

    assert response.status_code == 302


def test_a_delete_with_a_body_that_is_not_json_is_415_and_cancels_nothing(
    api: APIClient,
) -> None:
    order = make_order()

    response = api.generic(
        "DELETE", f"/async/orders/{order.pk}/", b"a=1", content_type="text/plain"
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    order.refresh_from_db()
    assert order.status == "queued"


def test_a_delete_without_a_body_needs_no_content_type(api: APIClient) -> None:
    order = make_order()

    response = api.generic("DELETE", f"/async/orders/{order.pk}/", content_type=None)

    assert response.status_code == 200


# --- text every database can store ---------------------------------------------------


@pytest.mark.parametrize(
    ("view", "body", "field"),
    [
        ("echo", r'{"data": {"name": "a\u0000b"}}', "data.name"),
        ("echo", r'{"data": ["ok", "\ud800"]}', "data.1"),
        ("echo", r'{"data": {"k\u0000": 1}}', "data"),
        ("echo", r'{"query": {"q": "\u0000"}}', "query.q"),
        ("echo", r'{"query": {"q": ["a", "\udfff"]}}', "query.q.1"),
        ("shop:item-detail", r'{"kwargs": {"pk": "a\u0000"}}', "kwargs.pk"),
        ("shop:item-detail", r'{"kwargs": {"pk": "\ud83d"}}', "kwargs.pk"),
    ],
)
def test_nul_characters_and_lone_surrogates_are_400_naming_the_field(
    api: APIClient, view: str, body: str, field: str
) -> None:
    response = api.post(f"/async/{view}/order/", body, content_type="application/json")

    assert_refused(response, 400, "invalid_envelope")
    assert field in response.json()["fields"]


def test_a_surrogate_pair_is_an_ordinary_character(api: APIClient) -> None:
    response = api.post(PLACE, r'{"data": "\ud83c\udf55"}', content_type="application/json")

    assert response.status_code == 302
    assert Order.objects.get().data == "\U0001f355"
