"""What a called view answered, as a value the order stores and judges.

Below both :mod:`async_orders.worker.dispatch`, which captures it, and
:mod:`async_orders.models`, which stores it: neither needs the other for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.http.request import validate_host
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme

from async_orders.conf import conf


@dataclass(frozen=True)
class ViewResponse:
    """What the view answered, as the order stores it."""

    status_code: int
    content_type: str
    body: bytes
    location: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code < 400

    @property
    def storable(self) -> bool:
        """Whether the body fits ``MAX_RESULT_BYTES``; a larger one is not kept at all."""
        return len(self.body) <= conf.MAX_RESULT_BYTES

    def location_on_site(self, origin: str) -> str | None:
        """The ``Location`` if following it keeps a client on the site the order was
        placed on (the ``origin``'s host, or one of ``RESULT_ALLOWED_HOSTS``), else
        ``None``: an order's result must not send its client anywhere else."""
        if not self.location:
            return None
        return self.location if _on_site(self.location, origin) else None

    @property
    def asks_for_login(self) -> bool:
        """A redirect to ``LOGIN_URL`` (``login_required`` and the like): the view wanted
        a signed-in user; its login page is no result of the order."""
        if not (300 <= self.status_code < 400 and self.location):
            return False
        target, login = _split(self.location), _split(resolve_url(settings.LOGIN_URL))
        if target is None or login is None:
            return False
        return target.path == login.path and login.netloc in ("", target.netloc)

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON (or too large to keep)."""
        if "json" not in self.content_type or not self.storable:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _on_site(location: str, origin: str) -> bool:
    allowed = {urlsplit(origin).netloc}
    target = _split(location)
    if target is None:
        return False
    if target.hostname and validate_host(target.hostname, conf.RESULT_ALLOWED_HOSTS):
        allowed.add(target.netloc)
    # Django's own test for redirect targets: it knows "//host", "\\host", "https:host"...
    return url_has_allowed_host_and_scheme(location, allowed_hosts=allowed)


def _split(url: str) -> SplitResult | None:
    """``urlsplit(url)``, or ``None`` for a URL it cannot take apart."""
    try:
        return urlsplit(url)
    except ValueError:  # "http://[::1" and the like
        return None
