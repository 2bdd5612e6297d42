"""A Python client for the order endpoints of async_orders, for scripts and other services.

Its own distribution, ``async-orders-client``, so that a machine that only places
orders installs ``requests`` and this package, never Django, Celery or the rest of
the server: ``pip install async-orders-client`` (from a checkout of async_orders,
``pip install ./clients/python``). It is the other side of the HTTP contract in
async_orders' ``docs/http-api.md``. A server install reaches the same objects as
``async_orders.client``, which re-exports this module.

    client = Client("https://shop.example", session=authenticated_session)
    order = client.run("shop:report", kwargs={"size": 40}, on_progress=print, timeout=600)
    report = client.result(order).json()

A failed or canceled order raises :class:`OrderFailed` / :class:`OrderCanceled`
carrying the order's ``error``; an error answer of an endpoint raises
:class:`APIError` with its ``code`` and ``detail``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urljoin

import requests

__all__ = [
    "RETRY_STATUSES",
    "UNSAFE_METHODS",
    "APIError",
    "Batch",
    "Client",
    "Order",
    "OrderCanceled",
    "OrderError",
    "OrderFailed",
    "OrderTimeout",
    "ProgressCallback",
]
#: Always the version of the async_orders server it was released with (a test checks).
__version__ = "0.1.0.dev0"

#: Methods Django checks the CSRF token on.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Answers to a poll that mean "not now" rather than "no": wait and ask again.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Order:
    """An order as the server last described it (the JSON representation)."""

    id: str
    url: str
    view: str
    status: str
    progress: dict[str, Any]
    message: str
    resource_url: str | None
    error: dict[str, Any] | None
    #: The whole representation, for the fields not named above.
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Order:
        names = ("id", "url", "view", "status", "progress", "message", "resource_url", "error")
        fields: dict[str, Any] = {name: body.get(name) for name in names}
        return cls(**fields, raw=body)

    @property
    def is_finished(self) -> bool:
        return self.status in ("completed", "failed", "canceled")

    @property
    def percent(self) -> float | None:
        return self.progress.get("percent")

    @property
    def labels(self) -> dict[str, str]:
        """The labels it was placed with (``labels=``), and those its view added."""
        return dict(self.raw.get("labels") or {})


@dataclass(frozen=True)
class Batch:
    """A batch as the server last described it: its orders' statuses and bars."""

    id: str
    url: str
    total: int
    counts: dict[str, int]
    percent: float
    finished: bool
    #: Each order: ``id``, ``url``, ``status`` and ``percent``, in the order placed.
    orders: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Batch:
        names = ("id", "url", "total", "counts", "percent", "finished", "orders")
        fields: dict[str, Any] = {name: body.get(name) for name in names}
        return cls(**fields, raw=body)

    @property
    def is_finished(self) -> bool:
        return bool(self.finished)

    @property
    def status(self) -> str:
        return "finished" if self.finished else "active"


class APIError(Exception):
    """An endpoint answered with an error body: ``{"code": ..., "detail": ...}``."""

    def __init__(self, response: requests.Response) -> None:
        body = _json_or_empty(response)
        self.response = response
        self.status_code = response.status_code
        self.code: str = body.get("code", "http_error")
        self.detail: str = body.get("detail", response.reason or "")
        #: For a 400: the messages of each bad field (``kwargs.pk``, ``orders.2.view``).
        self.fields: dict[str, list[str]] = body.get("fields") or {}
        super().__init__(f"{self.status_code} {self.code}: {self.detail}")


class OrderError(Exception):
    """The order did not complete; ``order`` is its final state, ``error`` its error."""

    def __init__(self, order: Order) -> None:
        self.order = order
        self.error = order.error
        message = (order.error or {}).get("message") or f"The order was {order.status}."
        super().__init__(message)


class OrderFailed(OrderError):
    """The view answered 4xx/5xx or raised; ``error`` has code, message, status_code, body."""


class OrderCanceled(OrderError):
    """The order was canceled (by this client, another one, or an operator)."""


class OrderTimeout(TimeoutError):
    """:meth:`Client.wait` (or :meth:`Client.wait_batch`) ran out of time. The order (the
    batch) goes on; ``order`` is its last state."""

    def __init__(self, order: Order | Batch, timeout: float) -> None:
        self.order = order
        super().__init__(f"Order {order.id} still {order.status} after {timeout}s.")


ProgressCallback = Callable[[Order], Any]
Followed = TypeVar("Followed", Order, Batch)


class Client:
    """Places, follows, cancels and collects orders on one server.

    Pass a ``requests.Session`` that carries your authentication (``session.auth``,
    a token header, or the cookies of a login); the client adds Django's CSRF
    header from the session's cookie on unsafe requests, which session logins need.
    """

    def __init__(
        self,
        server: str,
        *,
        session: requests.Session | None = None,
        base_path: str = "/async/",
        request_timeout: float = 10.0,
        poll_interval: float = 0.5,
        max_poll_interval: float = 30.0,
        backoff: float = 1.5,
        long_poll: float = 20.0,
        csrf_cookie_name: str = "csrftoken",
        csrf_header_name: str = "X-CSRFToken",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        #: The folder of the order endpoints, always ending in ``/``.
        self.base = urljoin(server.rstrip("/") + "/", base_path.strip("/") + "/")
        self.session = session or requests.Session()
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.backoff = backoff
        #: Seconds a poll may wait on the server for the next change (``?wait=``) when
        #: the server offers it (its answers carry an ETag); 0 polls on Retry-After only.
        self.long_poll = long_poll
        self.csrf_cookie_name = csrf_cookie_name
        self.csrf_header_name = csrf_header_name
        self.sleep = sleep

    def place(
        self, view_name: str, *, idempotency_key: str | None = None, **envelope: Any
    ) -> Order:
        """Order ``view_name``; ``envelope`` takes the keys of the order request
        (``kwargs``, ``args``, ``method``, ``query``, ``data``, ``countdown``, ``eta``,
        ``callback_url``, ``labels``: a dict of strings to find it by, and the time
        limits ``timeout`` and ``start_deadline``, in seconds, never above the view's)."""
        return self._placed(self.order_url(view_name), idempotency_key, envelope)

    def rerun(self, order: Order | str, *, idempotency_key: str | None = None) -> Order:
        """Place a failed or canceled order again: a new order with the same envelope
        (its ``raw["rerun_of"]`` is the old one's URL). An order still active or
        completed raises :class:`APIError` ``order_not_rerunnable`` (409)."""
        return self._placed(f"{_url_of(order)}rerun/", idempotency_key, None)

    def attempts(self, order: Order | str) -> list[dict[str, Any]]:
        """Each attempt of the order, oldest first: ``number``, ``started_at``,
        ``finished_at``, ``worker``, ``outcome`` and ``error``."""
        response = self._request("GET", f"{_url_of(order)}attempts/")
        if response.status_code != 200:
            raise APIError(response)
        attempts: list[dict[str, Any]] = response.json()
        return attempts

    def _placed(self, url: str, idempotency_key: str | None, body: Any) -> Order:
        """POST to an endpoint that places an order, which answers 302 to it."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._request("POST", url, json=body, headers=headers)
        if response.status_code != 302:
            raise APIError(response)
        return Order.from_json(response.json())

    def order_url(self, view_name: str) -> str:
        """Where to POST an order of ``view_name``. Appended, never ``urljoin``-ed: a
        namespaced name (``shop:report``) would read as a URL scheme and drop the server."""
        return f"{self.base}{quote(view_name, safe=':')}/order/"

    def get(self, order: Order | str) -> Order:
        """The order's current state, polled once (``order``: an Order or its URL)."""
        response = self._poll(_url_of(order))
        return Order.from_json(response.json())

    def wait(
        self,
        order: Order | str,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Order:
        """Poll until the order finishes, honouring ``Retry-After``; return it completed.

        ``on_progress`` gets every state polled, the final one included. Raises
        :class:`OrderFailed`, :class:`OrderCanceled` or, after ``timeout`` seconds,
        :class:`OrderTimeout` (the order itself is not canceled by that).
        """
        return _settle(self._follow(_url_of(order), Order.from_json, timeout, on_progress))

    def _follow(
        self,
        url: str,
        parse: Callable[[dict[str, Any]], Followed],
        timeout: float | None,
        on_progress: Callable[[Followed], Any] | None,
    ) -> Followed:
        """Poll ``url`` (an order, a batch) until it is finished; see :meth:`wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        etag, wait, last = None, 0.0, None
        for attempt in itertools.count():
            asked = time.monotonic()
            response = self._poll(url, wait, etag)
            changed = response.status_code != 304
            if changed:
                last, etag = parse(response.json()), response.headers.get("ETag")
                if on_progress is not None:
                    on_progress(last)
                if last.is_finished:
                    return last
            long_poll = bool(self.long_poll and etag)
            delay = self._pause(response, attempt, long_poll, changed, time.monotonic() - asked)
            left = math.inf if deadline is None else deadline - time.monotonic() - delay
            if left <= 0:
                # The first poll sends no ETag, so it always answers with the state.
                assert last is not None
                raise OrderTimeout(last, timeout or 0)
            self.sleep(delay)
            wait = min(self.long_poll, left) if long_poll else 0.0
        raise AssertionError("unreachable")  # pragma: no cover (count() never ends)

    def run(
        self,
        view_name: str,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        idempotency_key: str | None = None,
        order_timeout: float | None = None,
        **envelope: Any,
    ) -> Order:
        """:meth:`place` then :meth:`wait`: the completed order, or an exception.
        ``timeout`` is how long to wait here; ``order_timeout`` is the order's own
        ``timeout`` (how long an attempt may run on the worker)."""
        if order_timeout is not None:
            envelope["timeout"] = order_timeout
        placed = self.place(view_name, idempotency_key=idempotency_key, **envelope)
        return self.wait(placed, timeout=timeout, on_progress=on_progress)

    def cancel(self, order: Order | str) -> Order:
        """Cancel: a waiting order is ``canceled`` at once; a running one comes back
        still ``running`` with ``cancel_requested`` and stops at its next progress
        step. A finished order raises :class:`APIError` ``order_finished`` (409)."""
        response = self._request("DELETE", _url_of(order))
        if response.status_code not in (200, 202):
            raise APIError(response)
        return Order.from_json(response.json())

    def result(self, order: Order | str) -> requests.Response:
        """The view's response, replayed: ``.status_code``, ``.json()``, ``.content``."""
        if isinstance(order, str):
            order = self.get(order)
        if order.status != "completed" or not order.resource_url:
            raise OrderError(order)
        response = self._request("GET", order.resource_url)
        if response.status_code >= 400 and order.resource_url.startswith(order.url):
            raise APIError(response)  # our result endpoint refused (e.g. 410)
        return response

    def place_batch(self, orders: list[dict[str, Any]]) -> Batch:
        """Place several orders at once, all or none: each a dict of the envelope's
        keys and ``view``. An invalid one refuses them all: :class:`APIError`
        ``invalid_batch``, whose ``fields`` name ``orders.<index>.<field>``."""
        response = self._request("POST", f"{self.base}batches/", json={"orders": orders})
        if response.status_code != 302:
            raise APIError(response)
        return Batch.from_json(response.json())

    def get_batch(self, batch: Batch | str) -> Batch:
        """The batch's current state, polled once (``batch``: a Batch or its URL)."""
        return Batch.from_json(self._poll(_url_of(batch)).json())

    def wait_batch(
        self,
        batch: Batch | str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Batch], Any] | None = None,
    ) -> Batch:
        """Poll until every order of the batch has finished, however each ended (see
        ``counts``); :class:`OrderTimeout` after ``timeout`` seconds."""
        return self._follow(_url_of(batch), Batch.from_json, timeout, on_progress)

    def cancel_batch(self, batch: Batch | str) -> Batch:
        """Cancel every unfinished order of the batch; :class:`APIError`
        ``batch_finished`` (409) when none was."""
        response = self._request("DELETE", _url_of(batch))
        if response.status_code not in (200, 202):
            raise APIError(response)
        return Batch.from_json(response.json())

    def _pause(
        self,
        response: requests.Response,
        attempt: int,
        long_poll: bool,
        changed: bool,
        took: float,
    ) -> float:
        """Seconds before the next poll. Long-polling, none after a change or after the
        server really waited; otherwise ``Retry-After``, so that a server that ignores
        ``?wait=`` is never polled in a tight loop."""
        if long_poll and (changed or took >= self.long_poll / 2):
            return 0.0
        return self.delay(response.headers.get("Retry-After"), attempt)

    def delay(self, retry_after: str | None, attempt: int) -> float:
        """Seconds before the next poll: the server's ``Retry-After`` when it sent one,
        else an exponential backoff; never more than ``max_poll_interval``."""
        seconds = _seconds(retry_after)
        if seconds is None:
            seconds = self.poll_interval * self.backoff**attempt
        return min(seconds, self.max_poll_interval)

    def _poll(self, url: str, wait: float = 0.0, etag: str | None = None) -> requests.Response:
        """GET the order, long-polling up to ``wait`` seconds from the state ``etag``
        (then a 304 means nothing changed); retries "not now" answers."""
        params = {"wait": f"{wait:g}"} if wait > 0 else None
        headers = {"If-None-Match": etag} if wait > 0 and etag else {}
        for attempt in itertools.count():
            response = self._request(
                "GET", url, params=params, headers=headers, timeout=self.request_timeout + wait
            )
            if response.status_code not in RETRY_STATUSES:
                break
            self.sleep(self.delay(response.headers.get("Retry-After"), attempt))
        if response.status_code not in (200, 201, 202, 304):
            raise APIError(response)
        return response

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        if method in UNSAFE_METHODS:
            headers.update(self._csrf_headers())
        kwargs.setdefault("timeout", self.request_timeout)
        return self.session.request(method, url, headers=headers, allow_redirects=False, **kwargs)

    def _csrf_headers(self) -> dict[str, str]:
        token = self.session.cookies.get(self.csrf_cookie_name)
        # Django also checks Referer on HTTPS; the server's own address passes.
        return {self.csrf_header_name: token, "Referer": self.base} if token else {}


def _settle(order: Order) -> Order:
    if order.status == "failed":
        raise OrderFailed(order)
    if order.status == "canceled":
        raise OrderCanceled(order)
    return order


def _url_of(order: Order | Batch | str) -> str:
    return order if isinstance(order, str) else order.url


def _seconds(retry_after: str | None) -> float | None:
    try:
        return max(float(retry_after), 0.0) if retry_after is not None else None
    except ValueError:
        return None  # an HTTP-date: our server never sends one; back off instead


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
