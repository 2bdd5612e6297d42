"""Every error code our endpoints can answer with is in the documented catalogue."""

from __future__ import annotations

import inspect
import re

from rest_framework import exceptions as drf_exceptions
from rest_framework.exceptions import APIException

from async_orders import exceptions
from async_orders.models import FailureCode
from tests.helpers import ROOT

CATALOGUE = (ROOT / "docs" / "http-api.md").read_text()
#: DRF's own errors that our endpoints can raise through DRF's machinery.
DRF_ERRORS = [
    drf_exceptions.ParseError,
    drf_exceptions.NotAuthenticated,
    drf_exceptions.AuthenticationFailed,
    drf_exceptions.PermissionDenied,
    drf_exceptions.NotFound,
    drf_exceptions.MethodNotAllowed,
    drf_exceptions.NotAcceptable,
    drf_exceptions.UnsupportedMediaType,
    drf_exceptions.Throttled,
]


def documented_codes() -> dict[str, int]:
    section = CATALOGUE.split("## Error catalogue", 1)[1]
    return {
        code: int(status[:3]) for code, status in re.findall(r"\| `(\w+)` \| (\S+) \|", section)
    }


def our_errors() -> list[type[APIException]]:
    return [
        cls
        for _, cls in inspect.getmembers(exceptions, inspect.isclass)
        if cls.__module__ == exceptions.__name__ and "default_code" in vars(cls)
    ]


def test_every_error_we_raise_is_documented_with_its_status() -> None:
    documented = documented_codes()

    for error in [*our_errors(), *DRF_ERRORS]:
        assert error.default_code in documented, error
        if error not in (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed):
            assert documented[error.default_code] == error.status_code, error


def test_the_catalogue_documents_nothing_that_does_not_exist() -> None:
    raised = {error.default_code for error in [*our_errors(), *DRF_ERRORS]}

    assert set(documented_codes()) == raised


def documented_failure_codes() -> set[str]:
    """The rows of the ``error.code`` table: why an order failed."""
    table = CATALOGUE.split("| `error.code` | meaning |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))


def test_the_failure_code_table_lists_every_failure_code_and_nothing_else() -> None:
    assert documented_failure_codes() == set(FailureCode.values)
