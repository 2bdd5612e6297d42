"""Errors our endpoints answer with: each has an HTTP status and a stable ``code``.

Views raise these; :func:`async_orders.views.handle_exception` renders every one of
them (and DRF's own) as ``{"code": ..., "detail": ..., "fields": {...}}``.
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException


class UnknownView(APIException):
    """The view name does not exist *or* is not schedulable: one answer for both."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "unknown_view"

    def __init__(self, view_name: str) -> None:
        super().__init__(f"No schedulable view is named {view_name!r}.")


class OrderNotFound(APIException):
    """Unknown order id, or an order the caller may not see."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "order_not_found"
    default_detail = "No such order."


class InvalidEnvelope(APIException):
    """The order request does not describe a call the view can take."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_envelope"

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
        super().__init__(f"Invalid order request. {summary}")


class ResultNotReady(APIException):
    """The order has not completed, so it has no result to replay."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "result_not_ready"

    def __init__(self, order_status: str) -> None:
        super().__init__(f"The order is {order_status}; only a completed order has a result.")


class OrderFinished(APIException):
    """A finished order cannot be canceled."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "order_finished"

    def __init__(self, order_status: str) -> None:
        super().__init__(f"The order is already {order_status}; there is nothing to cancel.")


class InvalidWait(APIException):
    """``?wait=`` is not a number of seconds."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_wait"

    def __init__(self, value: str) -> None:
        super().__init__(f"wait must be a number of seconds, not {value!r}.")
