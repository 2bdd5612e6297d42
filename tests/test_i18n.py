"""Every message a client reads is translatable; German ships. The ``code`` of an
error never changes with the language: clients branch on it, people read ``detail``."""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import translation
from rest_framework.test import APIClient

import async_orders
from tests.helpers import place

pytestmark = pytest.mark.django_db


@pytest.fixture
def german(settings) -> None:
    settings.LANGUAGE_CODE = "de"


@pytest.mark.usefixtures("german")
def test_an_unknown_view_is_answered_in_german(api: APIClient) -> None:
    response = place(api, "no-such-view")

    assert response.status_code == 404
    assert response.json() == {
        "code": "unknown_view",
        "detail": "Kein einplanbarer View heißt 'no-such-view'.",
    }


@pytest.mark.usefixtures("german")
def test_an_invalid_envelope_is_answered_in_german(api: APIClient) -> None:
    response = place(api, "echo-int", {"kwargs": {"number": 1}, "colour": "red"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_envelope"
    assert response.json()["detail"].startswith("Ungültiger Auftrag.")
    assert response.json()["fields"]["colour"][0].startswith("Unbekannter Schlüssel;")


@pytest.mark.usefixtures("german")
def test_too_many_active_orders_is_answered_in_german(api: APIClient, user: User, settings) -> None:
    settings.ASYNC_ORDERS = {"MAX_ACTIVE_ORDERS": 1}
    api.force_authenticate(user)
    place(api)

    response = place(api)

    assert response.status_code == 429
    assert response.json()["code"] == "too_many_active_orders"
    assert response.json()["detail"].startswith("Sie haben 1 unerledigte Aufträge")


@pytest.fixture
def locale_middleware(settings) -> Iterator[None]:
    """LocaleMiddleware activates the request's language for the thread, and leaves it
    active after the response: the next test must start in the default language."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]
    yield
    translation.deactivate()


@pytest.mark.usefixtures("locale_middleware")
def test_accept_language_picks_german_with_the_locale_middleware(api: APIClient) -> None:
    response = place(api, "no-such-view", headers={"Accept-Language": "de"})

    assert response.json()["detail"] == "Kein einplanbarer View heißt 'no-such-view'."


def test_english_stays_the_default(api: APIClient) -> None:
    response = place(api, "no-such-view")

    assert response.json()["detail"] == "No schedulable view is named 'no-such-view'."


def test_the_shipped_mo_file_is_compiled_from_the_po_file() -> None:
    """The .mo file is committed (no gettext tools needed to install); it must say what
    the .po file says. Recompile with ``msgfmt`` (or ``compilemessages``) after editing."""
    folder = Path(async_orders.__file__).parent / "locale" / "de" / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)
    entries = re.findall(
        r'^msgid ((?:".*"\n)+)msgstr ((?:".*"\n?)+)', (folder / "django.po").read_text(), re.M
    )
    source = {_joined(msgid): _joined(msgstr) for msgid, msgstr in entries if msgid != '""\n'}

    assert source
    assert {msgid: catalogue.gettext(msgid) for msgid in source} == source


def _joined(lines: str) -> str:
    return "".join(re.findall(r'"(.*)"', lines)).replace('\\"', '"')


@pytest.mark.usefixtures("german")
def test_an_invalid_batch_is_answered_in_german(api: APIClient) -> None:
    refused = api.post("/async/batches/", {"orders": []}, format="json")

    assert refused.json()["code"] == "invalid_batch"
    assert refused.json()["detail"].startswith("Ungültiger Stapel;")
    assert refused.json()["fields"]["orders"] == [
        "Eine Liste von 1 bis 100 Aufträgen (MAX_BATCH), jeder mit seinem View."
    ]
