"""Webhooks: POST the finished order to the ``callback_url`` it was placed with.

The URL is checked when the order is placed (a 400 naming ``callback_url``) and again
before every delivery, since settings and DNS can change in between: its host must
match ``WEBHOOK_ALLOWED_HOSTS``, and unless ``WEBHOOK_ALLOW_PRIVATE`` it must resolve
to public addresses only, so an order cannot make the server call into its own
network. Deliveries run in a Celery task, are signed (:mod:`async_orders.signing`),
retried with exponential backoff, and each attempt is kept as a
:class:`~async_orders.models.WebhookDelivery`.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from functools import partial
from typing import Any
from urllib.parse import urljoin, urlsplit

from celery import shared_task
from django.db import transaction
from django.dispatch import receiver
from django.http.request import validate_host
from rest_framework.renderers import JSONRenderer

from async_orders import signals
from async_orders.conf import conf
from async_orders.models import Order, WebhookDelivery
from async_orders.serializers import OrderSerializer
from async_orders.signing import SIGNATURE_HEADER, sign

logger = logging.getLogger("async_orders")

TASK_NAME = "async_orders.deliver_webhook"


def check_callback_url(url: str) -> None:
    """Raise :class:`ValueError`, with a message for the client, unless ``url`` may be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("Only http and https callback URLs are accepted.")
    host = parts.hostname or ""
    if not validate_host(host, conf.WEBHOOK_ALLOWED_HOSTS):
        raise ValueError(f"{host!r} is not among the hosts allowed for webhooks.")
    if not conf.WEBHOOK_ALLOW_PRIVATE:
        _refuse_private(host, parts.port or (443 if parts.scheme == "https" else 80))


def _refuse_private(host: str, port: int) -> None:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError:
        raise ValueError(f"{host!r} does not resolve.") from None
    for address in sorted(addresses):
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            raise ValueError(f"{host!r} is a private, loopback or reserved address.")


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
        check_callback_url(order.callback_url)
    except ValueError as refusal:
        _record(order, attempt, None, f"Not sent: {refusal}")
        return  # no longer allowed (settings or DNS changed): retrying cannot help
    if not deliver(order, attempt).delivered and attempt < conf.WEBHOOK_MAX_ATTEMPTS:
        raise task.retry(countdown=retry_delay(attempt), max_retries=None)


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after ``attempt``: the backoff doubles every time."""
    return conf.WEBHOOK_RETRY_BACKOFF * 2 ** (attempt - 1)


def deliver(order: Order, attempt: int) -> WebhookDelivery:
    """POST the order's representation to its callback URL once and record how it went."""
    body = JSONRenderer().render(representation(order))
    status, error = _post(order.callback_url, body, _headers(order, body))
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


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer, never a new target: it could point anywhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=conf.WEBHOOK_TIMEOUT) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, f"The receiver answered {error.code}."
    except (OSError, ValueError) as error:
        return None, str(error)[:500]


def _record(order: Order, attempt: int, status: int | None, error: str) -> WebhookDelivery:
    delivered = status is not None and 200 <= status < 300
    if not delivered:
        logger.warning("Webhook of order %s, attempt %s: %s", order.pk, attempt, error)
    return WebhookDelivery.objects.create(
        order=order, attempt=attempt, response_status=status, delivered=delivered, error=error
    )
