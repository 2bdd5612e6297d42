"""A client generated from the OpenAPI schema by openapi-python-client runs the whole
flow, against a live server and a real Celery worker: the schema is usable as is.

The schema is generated as a fresh project has it, with drf-spectacular's defaults
(no TITLE, VERSION nor ENUM_NAME_OVERRIDES, every view of the project in it), and the
client as docs/clients.md tells: generated with its names in a config file, then
installed with pip, not imported from where it was written."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from drf_spectacular import plumbing
from drf_spectacular.settings import SPECTACULAR_DEFAULTS, patched_settings

from tests.helpers import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]

PACKAGE = "async_orders_generated_client"
#: The generator's config of docs/clients.md: the names do not come from the title.
CONFIG = f"project_name_override: async-orders-generated-client\npackage_name_override: {PACKAGE}\n"


@contextmanager
def spectacular_defaults() -> Iterator[None]:
    """drf-spectacular as if the project set no SPECTACULAR_SETTINGS: each of the test
    project's settings patched back to its default, as drf-spectacular patches its
    settings object for a view's ``custom_settings``; the cached ENUM_NAME_OVERRIDES
    are dropped on the way in and out."""
    defaults = {name: SPECTACULAR_DEFAULTS[name] for name in settings.SPECTACULAR_SETTINGS}
    plumbing._load_enum_name_overrides.cache_clear()
    try:
        with patched_settings(defaults):
            yield
    finally:
        plumbing._load_enum_name_overrides.cache_clear()


def generate_and_install(root: Path) -> Path:
    """The client generated from the schema into ``root`` as docs/clients.md says,
    pip-installed into a target directory; that directory. Offline: no dependencies
    (httpx and attrs are this venv's), and its build backend (poetry-core, the
    generator's default) is this venv's too."""
    schema, config, site = root / "schema.yaml", root / "config.yaml", root / "site"
    with spectacular_defaults():
        call_command("spectacular", "--file", str(schema))
    config.write_text(CONFIG)
    bin_dir = Path(sys.executable).parent  # openapi-python-client runs ruff from PATH
    subprocess.run(
        [
            *(bin_dir / "openapi-python-client", "generate", "--path", schema),
            *("--config", config, "--output-path", root / "client"),
        ],
        check=True,
        capture_output=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"),
            *("--no-build-isolation", "--target", site, root / "client"),
        ],
        check=True,
        capture_output=True,
    )
    return site


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The installed package's modules this test calls."""
    site = generate_and_install(tmp_path_factory.mktemp("generated"))
    sys.path.insert(0, str(site))
    try:
        modules = {
            name: importlib.import_module(f"{PACKAGE}.{module}")
            for name, module in {
                "client": "client",
                "errors": "errors",
                "models": "models",
                "place": "api.async_orders.place_async_order",
                "poll": "api.async_orders.poll_async_order",
                "result": "api.async_orders.async_order_result",
                "list": "api.async_orders.list_async_orders",
                "place_batch": "api.async_orders.place_async_batch",
                "poll_batch": "api.async_orders.poll_async_batch",
                "rerun": "api.async_orders.rerun_async_order",
                "attempts": "api.async_orders.list_async_order_attempts",
            }.items()
        }
        yield SimpleNamespace(site=site, **modules)
    finally:
        sys.path.remove(str(site))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def client(api: SimpleNamespace, url: str, **httpx_args: Any) -> Any:
    # An undeclared status fails the test.
    return api.client.Client(base_url=url, httpx_args=httpx_args, raise_on_unexpected_status=True)


@pytest.fixture
def generated(api: SimpleNamespace, live_server: Any) -> Any:
    User.objects.create_user("gen", password="pw")
    return client(api, live_server.url, auth=("gen", "pw"))


def place(api: SimpleNamespace, generated: Any, view: str, **envelope: Any) -> Any:
    """Place an order with the envelope's keys as the model's arguments: plain dicts
    and lists, as a caller writes them."""
    return api.place.sync_detailed(
        view_name=api.models.PlaceAsyncOrderViewName(view),
        client=generated,
        body=api.models.Envelope(**envelope),
    )


def finished(api: SimpleNamespace, generated: Any, order: Any) -> Any:
    """Poll until the order is finished; the last answer."""

    def poll() -> Any:
        answer = api.poll.sync_detailed(id=order.id, client=generated)
        return answer if answer.status_code != 202 else None

    return wait_until(poll, timeout=30, what=f"order {order.id} to finish")


def test_the_client_is_installed_under_the_configured_names(api: SimpleNamespace) -> None:
    assert Path(api.client.__file__).is_relative_to(api.site)
    assert list(api.site.glob("async_orders_generated_client-0.0.0.dist-info"))


def test_placing_answers_302_with_the_typed_order(api: SimpleNamespace, generated: Any) -> None:
    placed = place(api, generated, "echo-int", kwargs={"number": 5})

    assert placed.status_code == 302
    assert isinstance(placed.parsed, api.models.Order)
    assert placed.parsed.view == "echo-int"
    assert placed.headers["Location"].endswith(f"/async/orders/{placed.parsed.id}/")


def test_kwargs_and_query_are_plain_dicts(api: SimpleNamespace, generated: Any) -> None:
    envelope = api.models.Envelope(kwargs={"number": 5}, query={"page": [1, 2]})

    assert envelope.to_dict() == {"kwargs": {"number": 5}, "query": {"page": [1, 2]}}
    placed = place(api, generated, "echo-int", kwargs={"number": 5}, query={"page": "2"})
    assert placed.status_code == 302


def test_the_envelope_model_takes_no_unknown_keys(api: SimpleNamespace, generated: Any) -> None:
    """The schema says what the server does: an unknown key is a 400. The model has no
    ``additional_properties`` to smuggle one in."""
    assert not hasattr(api.models.Envelope(), "additional_properties")
    with pytest.raises(TypeError):
        api.models.Envelope(kwarg={"number": 5})


def test_view_names_are_readable_enum_members(api: SimpleNamespace) -> None:
    names = api.models.PlaceAsyncOrderViewName

    assert names.SHOP_ITEM_LIST == "shop:item-list"
    assert names.ECHO_INT == "echo-int"
    assert names.ANSWERS_404 == "answers-404"


def test_polling_answers_202_then_201(api: SimpleNamespace, generated: Any, tmp_path: Path) -> None:
    order = place(api, generated, "gated", kwargs={"steps": 1}, data={"gate": str(tmp_path)}).parsed

    waiting = api.poll.sync_detailed(id=order.id, client=generated)
    (tmp_path / "0").touch()
    done = finished(api, generated, order)

    assert waiting.status_code == 202
    assert waiting.parsed.status in {"queued", "running"}
    assert done.status_code == 201
    assert done.parsed.status == "completed"
    assert done.parsed.progress.to_dict() == {"current": 1, "total": 1, "percent": 100.0}


def test_an_unchanged_order_answers_304(api: SimpleNamespace, generated: Any) -> None:
    order = place(api, generated, "echo").parsed
    done = finished(api, generated, order)

    again = api.poll.sync_detailed(
        id=order.id, client=generated, if_none_match=done.headers["ETag"]
    )

    assert again.status_code == 304
    assert again.parsed is None
    assert again.headers["ETag"] == done.headers["ETag"]


@pytest.mark.parametrize(
    ("view", "envelope", "status", "content_type"),
    [
        ("echo-int", {"kwargs": {"number": 5}}, 200, "application/json"),
        ("shop:item-list", {"data": {"name": "generated"}}, 201, "application/json"),
        ("answers-text", {}, 203, "text/plain"),
    ],
)
def test_the_result_replays_the_views_own_status(
    api: SimpleNamespace,
    generated: Any,
    view: str,
    envelope: dict[str, Any],
    status: int,
    content_type: str,
) -> None:
    order = place(api, generated, view, **envelope).parsed
    finished(api, generated, order)

    replayed = api.result.sync_detailed(id=order.id, client=generated)

    assert replayed.status_code == status
    assert replayed.headers["Content-Type"].startswith(content_type)
    assert replayed.parsed.payload.read() == replayed.content != b""


def test_an_anonymous_client_orders_without_credentials(
    api: SimpleNamespace, live_server: Any
) -> None:
    """The test project lets anonymous users in (DRF's AllowAny), and the schema says
    so; the generated functions take a plain ``Client`` (their annotation still asks
    for an ``AuthenticatedClient``: openapi-python-client 0.29 ignores ``security``'s
    empty requirement, its issue 1372)."""
    anonymous = client(api, live_server.url)

    order = place(api, anonymous, "echo").parsed
    done = finished(api, anonymous, order)

    assert done.status_code == 201


def test_a_failed_orders_error_is_typed(api: SimpleNamespace, generated: Any) -> None:
    order = place(api, generated, "answers-404").parsed

    failed = finished(api, generated, order).parsed

    assert failed.status == "failed"
    assert isinstance(failed.error, api.models.OrderError)
    assert failed.error.code == api.models.FailureCode.HTTP_ERROR
    assert failed.error.status_code == 404
    assert failed.error.body == {"detail": "No such thing."}


def test_a_refused_order_request_is_a_typed_4xx(api: SimpleNamespace, generated: Any) -> None:
    refused = place(api, generated, "echo-int", kwargs={"number": "five"})

    assert refused.status_code == 400
    assert isinstance(refused.parsed, api.models.Error)
    assert refused.parsed.code == "invalid_envelope"
    assert "kwargs.number" in refused.parsed.fields.to_dict()


def test_a_batch_is_placed_then_polled_to_200_and_its_labels_filter_the_list(
    api: SimpleNamespace, generated: Any
) -> None:
    orders = [
        api.models.BatchOrder(view="echo-int", kwargs={"number": n}, labels={"run": "gen"})
        for n in range(3)
    ]

    placed = api.place_batch.sync_detailed(client=generated, body=api.models.BatchRequest(orders))

    assert placed.status_code == 302
    assert isinstance(placed.parsed, api.models.Batch)
    assert placed.parsed.total == 3

    def poll() -> Any:
        answer = api.poll_batch.sync_detailed(id=placed.parsed.id, client=generated)
        return answer if answer.status_code == 200 else None

    done = wait_until(poll, timeout=30, what="the batch to finish").parsed
    assert done.finished is True
    assert done.counts.to_dict()["completed"] == 3
    assert [item.percent for item in done.orders] == [100.0] * 3
    listed = api.list.sync_detailed(client=generated, label="run:gen").parsed
    assert {order.id for order in listed.results} == {item.id for item in done.orders}
    assert all(order.labels.to_dict() == {"run": "gen"} for order in listed.results)


def test_a_failed_order_is_rerun_and_its_attempts_are_typed(
    api: SimpleNamespace, generated: Any
) -> None:
    order = place(api, generated, "flaky", data={"succeed_on": 9}, timeout=60).parsed
    failed = finished(api, generated, order).parsed

    attempts = api.attempts.sync_detailed(id=order.id, client=generated)
    rerun = api.rerun.sync_detailed(id=order.id, client=generated, idempotency_key="gen-1")

    assert (failed.timeout, failed.error.code) == (60, api.models.FailureCode.EXCEPTION)
    assert attempts.status_code == 200
    assert [attempt.outcome for attempt in attempts.parsed] == [
        api.models.AttemptOutcome.FAILED
    ] * 3
    assert attempts.parsed[0].error.code == api.models.FailureCode.EXCEPTION
    assert rerun.status_code == 302
    assert rerun.parsed.rerun_of == failed.url
    again = finished(api, generated, rerun.parsed).parsed
    assert [url for url in api.poll.sync_detailed(id=order.id, client=generated).parsed.reruns] == [
        again.url
    ]
