"""Project-level guarantees: migrations match the models, settings are checked, CI
cannot silently fall back to the embedded services."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

from tests.helpers import ROOT

pytestmark = pytest.mark.django_db


def test_models_and_migrations_agree() -> None:
    call_command("makemigrations", "async_orders", "--check", "--dry-run", verbosity=0)


def test_system_checks_pass_for_a_correct_configuration() -> None:
    assert run_checks() == []


def test_an_unknown_settings_key_is_a_system_check_error(settings) -> None:
    settings.ASYNC_ORDERS = {"RETRY_AFTR": 2}

    assert [message.id for message in run_checks()] == ["async_orders.E001"]


def test_a_listed_view_name_that_does_not_exist_is_a_system_check_error(settings) -> None:
    settings.ASYNC_ORDERS = {"SCHEDULABLE_VIEWS": ["nope:missing"]}

    errors = run_checks()
    assert [message.id for message in errors] == ["async_orders.E002"]
    assert "nope:missing" in errors[0].msg


def test_under_ci_a_missing_service_fails_the_run_instead_of_falling_back() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ASYNC_ORDERS")}
    env.update(CI="true", PGPORT="1")
    result = subprocess.run(
        [sys.executable, "-c", "import tests.services"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "not answering: PostgreSQL at 127.0.0.1:1" in result.stderr
