"""``manage.py check`` refuses ``ASYNC_ORDERS`` values of the wrong type or out of
range, with a stable id and a hint, instead of a 500 on the first order.

``async_orders.E005``: wrong type; ``async_orders.E006``: out of range; ``E008``: not a
dict at all; ``E009``: a class path that does not import; ``E010``/``E011``: lease
settings that contradict each other; ``E012``: orders would be published through a
Celery app that is not the project's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery, current_app
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, run_checks

from async_orders import checks
from async_orders.conf import DEFAULTS

pytestmark = pytest.mark.django_db

INTEGERS_FROM_1 = [
    "MAX_BODY_BYTES",
    "MAX_ACTIVE_ORDERS",
    "MAX_BATCH",
    "PURGE_BATCH_SIZE",
    "WEBHOOK_MAX_ATTEMPTS",
]
INTEGERS_FROM_0 = [
    "RETRY_AFTER",
    "MAX_RESULT_BYTES",
    "LONG_POLL_MAX_WAITERS_PER_PROCESS",
    "LONG_POLL_MAX_ASYNC_WAITERS_PER_PROCESS",
    "LONG_POLL_MAX_WAITERS_PER_CLIENT",
]
SECONDS_ABOVE_0 = [
    "HEARTBEAT_INTERVAL",
    "WORKER_LOST_AFTER",
    "RECONCILE_INTERVAL",
    "NOTIFY_DB_POLL_INTERVAL",
    "SSE_HEARTBEAT",
    "SSE_MAX_LIFETIME",
    "WEBHOOK_TIMEOUT",
    "HEALTH_MAX_QUEUE_AGE",
    "PUBLISH_TIMEOUT",
]
SECONDS_FROM_0 = [
    "PROGRESS_INTERVAL",
    "MAX_SCHEDULE_SECONDS",
    "LEASE_MARGIN",
    "REPUBLISH_AFTER",
    "MAX_RETRY_BACKOFF",
    "RETENTION_SECONDS",
    "LONG_POLL_MAX_WAIT",
    "WEBHOOK_RETRY_BACKOFF",
    "METRICS_STATUS_CACHE_SECONDS",
    "PUBLISH_BREAKER_SECONDS",
]
NUMBERS = INTEGERS_FROM_1 + INTEGERS_FROM_0 + SECONDS_ABOVE_0 + SECONDS_FROM_0
BOOLEANS = ["LONG_POLL_ASYNC", "WEBHOOK_ALLOW_PRIVATE", "HEALTH_VIEW", "METRICS_ENABLED"]
STRING_LISTS = [
    "SCHEDULABLE_VIEWS",
    "RESULT_ALLOWED_HOSTS",
    "WEBHOOK_ALLOWED_HOSTS",
    "TRUSTED_PROXIES",
]
CLASS_LISTS = ["AUTHENTICATION_CLASSES", "PERMISSION_CLASSES", "THROTTLE_CLASSES"]
OPTIONAL = [
    "MAX_ACTIVE_ORDERS",
    "QUEUE",
    "NOTIFY_REDIS_URL",
    "NOTIFY_SENTINEL_MASTER",
    "PUBLISH_TIMEOUT",
    *CLASS_LISTS,
]


def messages(settings: Any, **values: Any) -> list[CheckMessage]:
    settings.ASYNC_ORDERS = values
    return [message for message in run_checks() if message.id.startswith("async_orders.")]


def ids(settings: Any, **values: Any) -> list[str]:
    return [message.id for message in messages(settings, **values)]


def value_ids(settings: Any, **values: Any) -> list[str]:
    """The ids of the checks of single values (type and range), the others left out."""
    return [
        id for id in ids(settings, **values) if id in ("async_orders.E005", "async_orders.E006")
    ]


def test_every_setting_is_checked_by_one_of_these_tests() -> None:
    covered = {
        *NUMBERS,
        *BOOLEANS,
        *STRING_LISTS,
        *CLASS_LISTS,
        *OPTIONAL,
        "WEBHOOK_SECRET",
        "METRICS_TOKEN",
    }

    assert covered == set(DEFAULTS)


def test_a_word_for_a_number_is_an_error_naming_the_setting_and_the_value(settings: Any) -> None:
    [error] = messages(settings, MAX_ACTIVE_ORDERS="lots")

    assert error.id == "async_orders.E005"
    assert "ASYNC_ORDERS['MAX_ACTIVE_ORDERS']" in error.msg
    assert "'lots'" in error.msg


def test_the_hint_says_what_to_write_and_gives_the_default(settings: Any) -> None:
    [error] = messages(settings, MAX_ACTIVE_ORDERS="lots")

    assert "integer" in error.hint
    assert "None" in error.hint  # no cap is a valid choice here
    assert "100" in error.hint


@pytest.mark.parametrize("name", NUMBERS)
def test_every_number_setting_refuses_a_string(settings: Any, name: str) -> None:
    assert ids(settings, **{name: "5"}) == ["async_orders.E005"]


@pytest.mark.parametrize("name", NUMBERS)
def test_a_boolean_is_not_a_number(settings: Any, name: str) -> None:
    assert ids(settings, **{name: True}) == ["async_orders.E005"]


@pytest.mark.parametrize("name", INTEGERS_FROM_1 + INTEGERS_FROM_0)
def test_an_integer_setting_refuses_a_fraction(settings: Any, name: str) -> None:
    assert ids(settings, **{name: 2.5}) == ["async_orders.E005"]


@pytest.mark.parametrize("name", SECONDS_ABOVE_0 + SECONDS_FROM_0)
def test_a_seconds_setting_takes_an_integer_or_a_fraction(settings: Any, name: str) -> None:
    assert value_ids(settings, **{name: 3}) == value_ids(settings, **{name: 2.5}) == []


@pytest.mark.parametrize("name", INTEGERS_FROM_1)
def test_a_count_that_must_be_positive_refuses_zero(settings: Any, name: str) -> None:
    assert ids(settings, **{name: 0}) == ["async_orders.E006"]


@pytest.mark.parametrize("name", SECONDS_ABOVE_0)
def test_an_interval_refuses_zero(settings: Any, name: str) -> None:
    assert ids(settings, **{name: 0}) == ["async_orders.E006"]


@pytest.mark.parametrize("name", INTEGERS_FROM_0 + SECONDS_FROM_0)
def test_zero_is_allowed_where_it_means_none_or_at_once(settings: Any, name: str) -> None:
    assert value_ids(settings, **{name: 0}) == []


@pytest.mark.parametrize("name", NUMBERS)
def test_a_negative_number_is_out_of_range(settings: Any, name: str) -> None:
    [error] = messages(settings, **{name: -1})

    assert error.id == "async_orders.E006"
    assert "-1" in error.msg


@pytest.mark.parametrize("name", OPTIONAL)
def test_none_is_allowed_where_it_has_a_meaning(settings: Any, name: str) -> None:
    assert ids(settings, **{name: None}) == []


@pytest.mark.parametrize("name", ["RETRY_AFTER", "WEBHOOK_SECRET", "LONG_POLL_ASYNC"])
def test_none_elsewhere_is_a_type_error(settings: Any, name: str) -> None:
    assert ids(settings, **{name: None}) == ["async_orders.E005"]


@pytest.mark.parametrize("name", BOOLEANS)
def test_a_boolean_setting_refuses_a_string(settings: Any, name: str) -> None:
    # "False" is truthy: accepting it would turn the feature on.
    assert ids(settings, **{name: "False"}) == ["async_orders.E005"]


@pytest.mark.parametrize("name", STRING_LISTS + CLASS_LISTS)
def test_a_list_setting_refuses_a_lone_string(settings: Any, name: str) -> None:
    # ("a") is a string, not a tuple: iterating it would give letters.
    assert ids(settings, **{name: "rest_framework.permissions.AllowAny"}) == ["async_orders.E005"]


@pytest.mark.parametrize("name", STRING_LISTS)
def test_a_list_of_names_refuses_other_items(settings: Any, name: str) -> None:
    assert ids(settings, **{name: ["example.com", 3]}) == ["async_orders.E005"]


def test_a_tuple_is_as_good_as_a_list(settings: Any) -> None:
    assert ids(settings, RESULT_ALLOWED_HOSTS=("cdn.example.com",)) == []


def test_a_class_list_takes_import_paths_and_classes(settings: Any) -> None:
    from rest_framework.permissions import AllowAny

    classes = ["rest_framework.permissions.IsAdminUser", AllowAny]

    assert ids(settings, PERMISSION_CLASSES=classes) == []


@pytest.mark.parametrize("name", ["QUEUE", "NOTIFY_REDIS_URL", "WEBHOOK_SECRET", "METRICS_TOKEN"])
def test_a_string_setting_refuses_a_number(settings: Any, name: str) -> None:
    assert ids(settings, **{name: 5}) == ["async_orders.E005"]


def test_an_unknown_key_is_reported_once_not_type_checked(settings: Any) -> None:
    assert ids(settings, RETRY_AFTR="soon") == ["async_orders.E001"]


def test_the_defaults_pass_their_own_checks(settings: Any) -> None:
    assert ids(settings, **DEFAULTS) == []


@pytest.mark.parametrize("value", [[], None, "HEARTBEAT_INTERVAL=5"])
def test_settings_that_are_no_dict_are_one_error_not_a_traceback(settings: Any, value: Any) -> None:
    settings.ASYNC_ORDERS = value

    [error] = [message for message in run_checks() if message.id.startswith("async_orders.")]

    assert error.id == "async_orders.E008"
    assert repr(value) in error.msg


@pytest.mark.parametrize("name", CLASS_LISTS)
def test_a_class_path_that_does_not_import_is_an_error_naming_it(settings: Any, name: str) -> None:
    [error] = messages(settings, **{name: ["rest_framework.permissions.IsAuthenticatd"]})

    assert error.id == "async_orders.E009"
    assert "'rest_framework.permissions.IsAuthenticatd'" in error.msg
    assert name in error.msg


def test_a_lease_shorter_than_two_heartbeats_is_an_error(settings: Any) -> None:
    [error] = messages(settings, HEARTBEAT_INTERVAL=20, WORKER_LOST_AFTER=20, LEASE_MARGIN=60)

    assert error.id == "async_orders.E010"
    assert "WORKER_LOST_AFTER" in error.msg


def test_reconciler_passes_slower_than_a_lease_and_its_margin_are_an_error(settings: Any) -> None:
    [error] = messages(settings, RECONCILE_INTERVAL=15, LEASE_MARGIN=10)

    assert error.id == "async_orders.E011"
    assert "RECONCILE_INTERVAL" in error.hint


def test_the_test_projects_short_leases_pass_the_lease_checks(settings: Any) -> None:
    short = {"HEARTBEAT_INTERVAL": 0.2, "WORKER_LOST_AFTER": 1.5, "LEASE_MARGIN": 0.5}

    assert ids(settings, **short, RECONCILE_INTERVAL=0.2) == []


@pytest.fixture
def current_celery_app() -> Iterator[Callable[..., Celery]]:
    """Make an app current (``set_as_current``), as importing a project's celery.py does;
    the suite's app is current again afterwards."""
    previous = current_app._get_current_object()
    yield lambda main, **options: Celery(main, set_as_current=True, **options)
    previous.set_current()


def test_an_app_with_another_broker_than_celery_broker_url_is_an_error(
    settings: Any, current_celery_app: Callable[..., Celery]
) -> None:
    current_celery_app("yourproject", broker="amqp://guest@localhost:5672//")

    [error] = messages(settings)

    assert error.id == "async_orders.E012"
    assert "'yourproject'" in error.msg
    assert "yourproject/__init__.py" in error.hint


def test_no_app_at_all_is_an_error_naming_the_fix(
    settings: Any, current_celery_app: Callable[..., Celery]
) -> None:
    current_celery_app("default")  # what Celery makes up when nobody created an app

    [error] = messages(settings)

    assert error.id == "async_orders.E012"
    assert "no Celery app" in error.msg


def test_an_app_configured_from_the_django_settings_passes(
    settings: Any, current_celery_app: Callable[..., Celery]
) -> None:
    app = current_celery_app("yourproject")
    app.config_from_object("django.conf:settings", namespace="CELERY")

    assert ids(settings) == []


def test_schema_pages_mounted_without_drf_spectacular_installed_are_an_error(
    settings: Any,
) -> None:
    """The test URLconf mounts the Swagger UI page, as the quickstart shows."""
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "drf_spectacular"]

    [error] = messages(settings)

    assert error.id == "async_orders.E013"
    assert "SpectacularSwaggerView" in error.msg
    assert "'drf_spectacular'" in error.hint


def test_workers_that_would_reconnect_for_every_order_are_warned_about(
    settings: Any, current_celery_app: Callable[..., Celery]
) -> None:
    del settings.CELERY_DB_REUSE_MAX
    current_celery_app("yourproject").config_from_object("django.conf:settings", namespace="CELERY")

    [warning] = messages(settings)

    assert warning.id == "async_orders.W001"
    assert checks.RECONNECTING_DRAIN in warning.msg
    assert "CELERY_DB_REUSE_MAX = 1000" in warning.hint


def test_a_deployment_whose_workers_would_reconnect_for_every_order_is_warned_about(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """By ``check --deploy`` only: a test or development process keeps no connection."""
    postgres = {"ENGINE": "django.db.backends.postgresql"}
    monkeypatch.setattr(django_settings, "DATABASES", {"default": postgres})

    [warning] = async_orders_messages(include_deployment_checks=True)

    assert warning.id == "async_orders.W002"
    assert checks.RECONNECTING_DRAIN in warning.msg
    assert "CONN_MAX_AGE" in warning.hint
    assert async_orders_messages() == []
    monkeypatch.setitem(postgres, "CONN_MAX_AGE", 60)
    assert async_orders_messages(include_deployment_checks=True) == []


def async_orders_messages(**options: Any) -> list[CheckMessage]:
    return [m for m in run_checks(**options) if m.id.startswith("async_orders.")]


@pytest.mark.parametrize(
    ("database", "connects"),
    [
        ({"ENGINE": "django.db.backends.postgresql"}, True),  # Django's default: 0
        ({"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 0}, True),
        ({"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 600}, False),
        ({"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": None}, False),
        ({"ENGINE": "django.db.backends.postgresql", "OPTIONS": {"pool": True}}, False),
        ({"ENGINE": "django.db.backends.mysql"}, True),
        ({"ENGINE": "django.db.backends.sqlite3"}, False),  # a file opened, not a server
    ],
)
def test_a_database_whose_connection_django_closes_for_every_task(
    database: dict[str, Any], connects: bool
) -> None:
    """W002: the order task closes, as a request does, a connection older than
    CONN_MAX_AGE, so with 0 a worker reconnects for every order."""
    assert checks._connects_per_task(database) is connects


def test_trusted_proxies_must_be_addresses_or_networks(settings: Any) -> None:
    assert ids(settings, TRUSTED_PROXIES=["10.0.0.0/8", "::1", "192.0.2.7"]) == []
    assert ids(settings, TRUSTED_PROXIES=["proxy.example.com"]) == ["async_orders.E005"]
