"""Webhooks: POST the finished order to the ``callback_url`` it was placed with.

The URL is checked again before every delivery (:mod:`async_orders.callback_policy`
says which may be called), since settings and DNS can change after the order was
placed. A delivery resolves the host once, checks every address, and connects to one
of those: the name is never resolved again (DNS rebinding), while the ``Host`` header
and TLS (SNI, certificate) still use the name.

Deliveries run in a Celery task, are signed (:mod:`async_orders.signing`), retried
with exponential backoff, and each attempt is kept as a
:class:`~async_orders.models.WebhookDelivery`.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
import uuid
from functools import partial
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from celery import shared_task
from django.db import transaction
from django.dispatch import receiver
from rest_framework.renderers import JSONRenderer

from async_orders import signals
from async_orders.callback_policy import callback_addresses, port_of
from async_orders.conf import conf
from async_orders.models import Order, WebhookDelivery
from async_orders.serializers import OrderSerializer
from async_orders.signing import SIGNATURE_HEADER, sign

logger = logging.getLogger("async_orders")

TASK_NAME = "async_orders.deliver_webhook"


@receiver(signals.order_finished, dispatch_uid="async_orders.webhooks")
def _order_finished(sender: Any, order: Order, **kwargs: Any) -> None:
    if order.callback_url:
        transaction.on_commit(partial(_enqueue, order.pk))


def _enqueue(order_id: uuid.UUID) -> None:
    try:
        deliver_webhook.apply_async(args=[str(order_id)], queue=conf.QUEUE)
    except Exception:
        logger.exception("The webhook of order %s could not be queued.", order_id)


@shared_task(name=TASK_NAME, bind=True, ignore_result=True)
def deliver_webhook(task: Any, order_id: str) -> None:
    """One delivery attempt; schedules the next one (with backoff) if it failed."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None or not order.callback_url:
        return
    if order.webhook_deliveries.filter(delivered=True).exists():
        return  # a redelivered message: the receiver has it already
    attempt = order.webhook_deliveries.count() + 1
    try:
        addresses = callback_addresses(order.callback_url)
    except ValueError as refusal:
        _record(order, attempt, None, f"Not sent: {refusal}")
        return  # no longer allowed (settings or DNS changed): retrying cannot help
    if not deliver(order, attempt, addresses).delivered and attempt < conf.WEBHOOK_MAX_ATTEMPTS:
        raise task.retry(countdown=retry_delay(attempt), max_retries=None)


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after ``attempt``: the backoff doubles every time."""
    return conf.WEBHOOK_RETRY_BACKOFF * 2 ** (attempt - 1)


def deliver(order: Order, attempt: int, addresses: list[str]) -> WebhookDelivery:
    """POST the order's representation to its callback URL once, connecting to one of
    ``addresses`` (those :func:`callback_addresses` checked), and record how it went."""
    body = JSONRenderer().render(representation(order))
    status, error = _post(order.callback_url, addresses, body, _headers(order, body))
    return _record(order, attempt, status, error)


def representation(order: Order) -> dict[str, Any]:
    """The order as ``GET /async/orders/<id>/`` shows it to the client that placed it."""
    return OrderSerializer(order, context={"request": _OriginRequest(order.origin)}).data


class _OriginRequest:
    """Stands in for the request the serializer builds absolute URLs from."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def build_absolute_uri(self, location: str) -> str:
        return urljoin(self.origin + "/", location)


def _headers(order: Order, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "async-orders-webhook",
        "Async-Orders-Event": f"order.{order.status}",
        SIGNATURE_HEADER: sign(conf.WEBHOOK_SECRET, int(time.time()), body),
    }


def _post(
    url: str, addresses: list[str], body: bytes, headers: dict[str, str]
) -> tuple[int | None, str]:
    """POST once; a redirect is the receiver's answer, never a new target (it could
    point anywhere), so none is followed."""
    parts = urlsplit(url)
    connection = _pinned_connection(parts, addresses)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException, ValueError) as error:
        return None, str(error)[:500]
    finally:
        connection.close()
    return status, "" if 200 <= status < 300 else f"The receiver answered {status}."


def _pinned_connection(parts: SplitResult, addresses: list[str]) -> http.client.HTTPConnection:
    """A connection to the URL's host name (its ``Host`` header, TLS SNI and certificate
    check) whose socket goes to one of ``addresses``, without resolving the name again."""
    host, port, timeout = parts.hostname or "", port_of(parts), conf.WEBHOOK_TIMEOUT
    if parts.scheme == "https":
        context = ssl.create_default_context()
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    # http.client opens its socket through this attribute: (host, port), timeout, source.
    connection._create_connection = partial(_connect_first, addresses)  # type: ignore[attr-defined]
    return connection


def _connect_first(
    addresses: list[str], target: tuple[str, int], *args: Any, **kwargs: Any
) -> socket.socket:
    """``socket.create_connection`` to the first of ``addresses`` that answers, on the
    target's port; the target's host name is ignored, on purpose."""
    error: OSError = OSError("The callback host has no address.")
    for address in addresses:
        try:
            return socket.create_connection((address, target[1]), *args, **kwargs)
        except OSError as refused:
            error = refused
    raise error


def _record(order: Order, attempt: int, status: int | None, error: str) -> WebhookDelivery:
    delivered = status is not None and 200 <= status < 300
    if not delivered:
        logger.warning("Webhook of order %s, attempt %s: %s", order.pk, attempt, error)
    return WebhookDelivery.objects.create(
        order=order, attempt=attempt, response_status=status, delivered=delivered, error=error
    )
