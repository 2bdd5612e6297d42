"""Reading an order request's body: JSON only, bounded as it is read, never dropped.

DRF reads a body only when the request declares its ``Content-Length``: a chunked
body (``Transfer-Encoding: chunked``, no length) reached the view as an *empty*
envelope, whatever it held. Here the body is read from the stream the server hands
over, at most ``MAX_BODY_BYTES + 1`` bytes of it, whether its length was declared or
not; a body the server cannot hand over is refused (``411``), never taken for empty.

``Content-Type: application/json`` is required even for an empty body: it is what
keeps a cross-site form (or a ``no-cors`` fetch) from placing an order without a
CORS preflight.
"""

from __future__ import annotations

import io
from typing import IO, Any

from django.http import HttpRequest
from django.utils.http import parse_header_parameters
from django.utils.translation import gettext
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

from async_orders.conf import conf
from async_orders.exceptions import LengthRequired, RequestTooLarge

JSON = "application/json"
#: Bytes asked of the stream per read: the limit is checked between reads.
READ_SIZE = 64 * 1024


class JSONBodyParser(JSONParser):
    """DRF's JSON parser, with absurdly deep nesting refused as a 400, not a 500."""

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().parse(*args, **kwargs)
        except RecursionError:
            raise ParseError(gettext("JSON parse error - nested too deeply.")) from None


def json_body(request: HttpRequest) -> Any:
    """The request's JSON body, ``{}`` when it is empty: ``415`` unless it is declared
    JSON, ``413`` past ``MAX_BODY_BYTES``, ``411`` when it cannot be read."""
    require_json(request)
    body = read_body(request, conf.MAX_BODY_BYTES)
    if not body:
        return {}
    return JSONBodyParser().parse(io.BytesIO(body), JSON, {"encoding": "utf-8"})


def require_json(request: HttpRequest) -> None:
    """Raise ``415 unsupported_media_type`` unless the request says its body is JSON."""
    media_type, _ = parse_header_parameters(request.META.get("CONTENT_TYPE", ""))
    if media_type != JSON:
        raise UnsupportedMediaType(
            media_type,
            detail=gettext("Send the request with Content-Type: %(json)s, not %(type)s.")
            % {"json": JSON, "type": repr(media_type)},
        )


def require_json_if_body(request: HttpRequest) -> None:
    """For the endpoints that need no body (DELETE, a re-run): one that is sent must
    still say it is JSON, as for placing an order."""
    if has_body(request):
        require_json(request)


def has_body(request: HttpRequest) -> bool:
    """Whether the request comes with a body, declared by its length or its encoding."""
    return bool(_declared_length(request)) or "HTTP_TRANSFER_ENCODING" in request.META


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The body, read ``READ_SIZE`` bytes at a time; ``413`` as soon as it passes ``limit``
    (at once when its declared length does), without reading the rest."""
    length = _declared_length(request)
    if length is not None and length > limit:
        raise RequestTooLarge(limit)
    stream = _stream(request, length)
    body = bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(READ_SIZE, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
    raise RequestTooLarge(limit)


def _stream(request: HttpRequest, length: int | None) -> IO[bytes] | HttpRequest:
    """Where the body is read from. Django's own stream holds the declared length under
    WSGI and the whole body under ASGI; without a length, a WSGI server's input may only
    be read to its end when the server says so (``wsgi.input_terminated``, PEP 3333)."""
    chunked_wsgi = (
        length is None and "wsgi.input" in request.META and "HTTP_TRANSFER_ENCODING" in request.META
    )
    if not chunked_wsgi:
        return request
    if not request.META.get("wsgi.input_terminated"):
        raise LengthRequired()
    return request.META["wsgi.input"]


def _declared_length(request: HttpRequest) -> int | None:
    value = request.META.get("CONTENT_LENGTH") or None
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        message = gettext("Content-Length %(value)s is not a number of bytes.")
        raise ParseError(message % {"value": repr(value)}) from None
