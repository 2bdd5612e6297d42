"""Errors our endpoints answer with: each has an HTTP status and a stable ``code``.

Views raise these; :func:`async_orders.views.base.render_error` renders every one of
them (and DRF's own) as ``{"code": ..., "detail": ..., "fields": {...}}``. Each
``detail`` is translated into the request's language; the ``code`` never is.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext, gettext_lazy
from rest_framework import status
from rest_framework.exceptions import APIException


class UnknownView(APIException):
    """The view name does not exist *or* is not schedulable: one answer for both."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "unknown_view"

    def __init__(self, view_name: str) -> None:
        super().__init__(
            gettext("No schedulable view is named %(view)s.") % {"view": repr(view_name)}
        )


class OrderNotFound(APIException):
    """Unknown order id, or an order the caller may not see."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "order_not_found"
    default_detail = gettext_lazy("No such order.")


class FieldErrors(APIException):
    """A 400 that names each bad field; rendered with a ``fields`` map."""

    status_code = status.HTTP_400_BAD_REQUEST
    lead = gettext_lazy("Invalid request.")

    def __init__(self, fields: dict[str, list[Any]]) -> None:
        self.fields = {name: [str(message) for message in msgs] for name, msgs in fields.items()}
        summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.fields.items())
        super().__init__(f"{self.lead} {summary}")


class InvalidEnvelope(FieldErrors):
    """The order request does not describe a call the view can take."""

    default_code = "invalid_envelope"
    lead = gettext_lazy("Invalid order request.")


class ViewShadowed(APIException):
    """The view's name and arguments lead to a path that another view serves: a later
    route with the same URL name, or an earlier route that catches the path."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "view_shadowed"

    def __init__(self, view_name: str, path: str) -> None:
        message = gettext(
            "%(view)s with these arguments leads to %(path)s, which another view serves; "
            "the order would not run the view that was opted in."
        )
        super().__init__(message % {"view": repr(view_name), "path": repr(path)})


class InvalidQuery(FieldErrors):
    """The order list's query string has a bad value."""

    default_code = "invalid_query"
    lead = gettext_lazy("Invalid query.")


class ListingEveryoneDenied(APIException):
    """``?all=1`` asked for by a user without the ``async_orders.view_order`` permission."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "listing_everyone_denied"
    default_detail = gettext_lazy(
        "Listing everyone's orders (?all=1) takes the async_orders.view_order permission."
    )


class ResultNotReady(APIException):
    """The order has not completed, so it has no result to replay."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "result_not_ready"

    def __init__(self, order_status: str) -> None:
        message = gettext("The order is %(status)s; only a completed order has a result.")
        super().__init__(message % {"status": order_status})


class OrderFinished(APIException):
    """A finished order cannot be canceled."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "order_finished"

    def __init__(self, order_status: str) -> None:
        message = gettext("The order is already %(status)s; there is nothing to cancel.")
        super().__init__(message % {"status": order_status})


class CancelUnsupported(APIException):
    """The order's task runs on another ``TASKS`` backend, which cannot stop it: it has
    started, or that backend offers no way to drop a task it holds."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "cancel_unsupported"

    def __init__(self, backend: str, *, started: bool) -> None:
        if started:
            message = gettext(
                "The task has started on the TASKS backend %(backend)s, which cannot stop it."
            )
        else:
            message = gettext("The TASKS backend %(backend)s cannot cancel a task it holds.")
        super().__init__(message % {"backend": repr(backend)})


class OrderNotRerunnable(APIException):
    """Only an order that failed (timed out included) or was canceled can be re-run."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "order_not_rerunnable"

    def __init__(self, order_status: str) -> None:
        message = gettext("The order is %(status)s; only a failed or canceled order can be re-run.")
        super().__init__(message % {"status": order_status})


class ResultNotStored(APIException):
    """The order completed, but its response was too large to keep."""

    status_code = status.HTTP_410_GONE
    default_code = "result_not_stored"
    default_detail = gettext_lazy(
        "The view's response was larger than MAX_RESULT_BYTES and was not stored."
    )


class LengthRequired(APIException):
    """A body of undeclared length (chunked) that this server cannot hand over: refused,
    never taken for an empty one."""

    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_code = "length_required"
    default_detail = gettext_lazy(
        "This server cannot read a request body without Content-Length (a chunked one); "
        "send the Content-Length header."
    )


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int) -> None:
        message = gettext("The order request is larger than MAX_BODY_BYTES (%(limit)d bytes).")
        super().__init__(message % {"limit": limit})


class TooManyActiveOrders(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_active_orders"

    def __init__(self, limit: int, retry_after: int) -> None:
        self.wait = retry_after  # DRF's exception handler turns it into Retry-After
        message = gettext(
            "You have %(limit)d unfinished orders, the most allowed (MAX_ACTIVE_ORDERS); "
            "wait for one to finish or cancel one."
        )
        super().__init__(message % {"limit": limit})


class InvalidIdempotencyKey(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_idempotency_key"
    default_detail = gettext_lazy("Idempotency-Key must be 1 to 255 printable ASCII characters.")


class IdempotencyKeyNeedsClient(APIException):
    """An anonymous request without a session has nobody to scope its key to: honouring
    it would hand one client another's order (its URL is the only key to it)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "idempotency_key_needs_client"
    default_detail = gettext_lazy(
        "An Idempotency-Key needs a client the server can recognise: authenticate, or "
        "keep the session cookie; or send the order request without the key."
    )


class IdempotencyKeyReused(APIException):
    """The key was used before, with a different envelope: a client bug, not a retry."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = gettext_lazy(
        "This Idempotency-Key was already used for a different order request; "
        "use a new key for a new request."
    )


class OrderConflict(APIException):
    """The order would touch objects locked by an active order (or other code)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "order_conflict"

    def __init__(self, blocking_order_url: str | None) -> None:
        self.extra = {"blocking_order": blocking_order_url}
        if blocking_order_url:
            message = gettext("The order would touch objects locked by the order %(url)s.")
        else:
            message = gettext("The order would touch objects locked by another operation.")
        super().__init__(message % {"url": blocking_order_url})


class InvalidWait(APIException):
    """``?wait=`` is not a number of seconds."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_wait"

    def __init__(self, value: str) -> None:
        message = gettext("wait must be a number of seconds, not %(value)s.")
        super().__init__(message % {"value": repr(value)})


class DatabaseUnavailable(APIException):
    """The database cannot be reached (restarting, failing over): try again shortly.
    Nothing was stored, so a retry places the order once."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = gettext_lazy("The database cannot be reached right now; try again shortly.")

    def __init__(self, retry_after: int) -> None:
        self.wait = retry_after  # DRF's exception handler turns it into Retry-After
        super().__init__()


class TaskBackendUnavailable(APIException):
    """Another ``TASKS`` backend failed to enqueue an ordered task (its broker or store
    down): try again shortly. The order's transaction was rolled back with it, so
    nothing was stored and a retry places the order once."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "task_backend_unavailable"

    def __init__(self, alias: str, retry_after: int) -> None:
        self.wait = retry_after  # DRF's exception handler turns it into Retry-After
        message = gettext(
            "The tasks backend %(alias)s could not enqueue the task; try again shortly."
        )
        super().__init__(message % {"alias": repr(alias)})


class InvalidBatch(FieldErrors):
    """A batch with an invalid item (or none, or too many): nothing of it was placed.
    Each field is named ``orders.<index>.<field>``, so a client can fix every item."""

    default_code = "invalid_batch"
    lead = gettext_lazy("Invalid batch; no order of it was placed.")


class BatchNotFound(APIException):
    """Unknown batch id, or a batch the caller may not see."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "batch_not_found"
    default_detail = gettext_lazy("No such batch.")


class BatchFinished(APIException):
    """Every order of the batch has finished: there is nothing to cancel."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "batch_finished"
    default_detail = gettext_lazy("Every order of the batch has finished; nothing to cancel.")
