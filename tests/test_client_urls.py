"""The URLs :class:`async_orders.client.Client` asks, without a server: every Django
URL name a view can have (namespaced, nested, DRF router names) lands on the order
endpoint of that name, however the client was given its server and base path."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from async_orders.client import Client


class RecordingSession(requests.Session):
    """Answers every request with a 302 and an order, recording the URLs asked."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        self.urls.append(url)
        response = requests.Response()
        response.status_code = 302
        response._content = b'{"id": "1", "url": "/async/orders/1/", "status": "queued"}'
        return response


def placed_url(view_name: str, server: str = "http://shop.test", **options: Any) -> str:
    session = RecordingSession()
    Client(server, session=session, **options).place(view_name)
    return session.urls[-1]


@pytest.mark.parametrize(
    "view_name",
    [
        "report",
        "shop:report",
        "api:v1:report",
        "shop:pizza-list",
        "shop:pizza-detail",
        "shop:pizza-set-price",
        "pizza-list",
        "orders",
    ],
)
def test_every_url_name_is_a_path_segment_of_the_server(view_name: str) -> None:
    # urljoin() used to read "shop:" as a URL scheme and leave the server behind.
    assert placed_url(view_name) == f"http://shop.test/async/{view_name}/order/"


def test_characters_that_are_not_path_characters_are_quoted() -> None:
    assert placed_url("shop:a b?c#d") == "http://shop.test/async/shop:a%20b%3Fc%23d/order/"


@pytest.mark.parametrize("base_path", ["/async/", "async", "/async", "async/"])
def test_the_base_path_is_one_folder_with_or_without_slashes(base_path: str) -> None:
    url = placed_url("shop:report", "http://shop.test/app/", base_path=base_path)

    assert url == "http://shop.test/app/async/shop:report/order/"
