"""The demo page in a real headless Chromium: the JS client orders ``shop:report``
from the demo (``python -m demo.run``: web server, Celery worker, broker), and the
page shows the bar moving, the result, a cancel, a failure.

Chromium is Debian's (``/usr/bin/chromium``, or ``$CHROMIUM``) driven by Playwright;
``make test`` installs it when it can. Without it these tests skip, except under
``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import services
from tests.demo_server import free_port, start_demo, stop_demo
from tests.helpers import wait_until

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Where the mid-order screenshot is kept (the scratch directory of this test run).
SCREENSHOT = Path(services.SCRATCH) / "demo-page-mid-order.png"


def _browser_missing() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true needs the browser tests to run: {missing}")
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo's base URL, once its home page answers."""
    port = free_port()
    runner = start_demo(port, tmp_path_factory.mktemp("demo") / "demo.sqlite3")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base), timeout=60, what="the demo to answer")
        yield base
    finally:
        stop_demo(runner)


@pytest.fixture
def page(browser: Any, demo: str) -> Iterator[Any]:
    context = browser.new_context(base_url=demo, viewport={"width": 900, "height": 640})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/")
    yield page
    context.close()


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def start(page: Any, size: int) -> None:
    page.fill("#size", str(size))
    page.click("#start")


def bar(page: Any) -> float:
    return float(page.eval_on_selector("#bar", "bar => bar.value"))


def status(page: Any) -> str:
    return page.get_attribute("#status", "data-status")


def test_start_shows_the_bar_moving_then_the_result(page: Any) -> None:
    start(page, 30)

    first = wait_until(lambda: 0 < bar(page) < 100 and bar(page), what="the bar to start moving")
    page.screenshot(path=str(SCREENSHOT))
    wait_until(lambda: first < bar(page) < 100, what="the bar to move on")
    assert page.text_content("#message") == "Baking the report"
    assert status(page) == "running"
    assert page.is_disabled("#start")

    wait_until(lambda: status(page) == "completed", what="the order to complete")
    assert bar(page) == 100
    assert page.text_content("#percent") == "100% (30/30)"
    assert page.is_visible("#result-link")
    assert page.is_hidden("#error")
    page.click("#result-link")
    assert page.url.endswith("/result/")
    assert '"total": 435' in page.text_content("body")


def test_cancel_stops_the_order(page: Any) -> None:
    start(page, 300)
    wait_until(lambda: bar(page) > 0, what="the order to make progress")

    page.click("#cancel")

    wait_until(lambda: status(page) == "canceled", what="the page to show the cancel")
    assert page.text_content("#status") == "Canceled"
    order = requests.get(page.get_attribute("#status", "data-order-url"), timeout=5).json()
    assert order["status"] == "canceled"
    assert 0 < order["progress"]["current"] < 300
    assert page.is_hidden("#result")
    assert page.is_enabled("#start")


def test_a_failed_order_shows_its_error(page: Any) -> None:
    start(page, 13)

    wait_until(lambda: page.is_visible("#error"), what="the error to show")
    assert page.text_content("#error") == "The oven broke down."
    assert status(page) == "failed"
    assert page.is_hidden("#result")


def bar_colour(page: Any) -> str:
    return page.eval_on_selector("#bar", "bar => getComputedStyle(bar).accentColor")


def test_the_bar_turns_red_on_failure_and_says_failed_once(page: Any) -> None:
    start(page, 13)

    wait_until(lambda: status(page) == "failed", what="the order to fail")
    assert bar_colour(page) == "rgb(170, 17, 17)"
    assert page.inner_text("body").count("Failed") == 1


def test_the_bar_turns_grey_on_cancel(page: Any) -> None:
    start(page, 300)
    wait_until(lambda: bar(page) > 0, what="the order to make progress")

    page.click("#cancel")

    wait_until(lambda: status(page) == "canceled", what="the page to show the cancel")
    assert bar_colour(page) == "rgb(136, 136, 136)"


def test_no_percentage_is_shown_before_the_total_is_known(page: Any) -> None:
    def without_total(route: Any) -> None:
        """The order as a view that has not reported its total yet shows it."""
        answer = route.fetch()
        order = {**answer.json(), "status": "running"}
        order["progress"] = {"current": 0, "total": None, "percent": None}
        route.fulfill(response=answer, status=202, json=order)

    page.route("**/async/orders/*/", without_total)
    start(page, 5)

    wait_until(lambda: status(page) == "running", what="the order to run")
    assert page.text_content("#percent") == ""


def test_the_client_sends_the_csrf_token_from_the_cookie(page: Any) -> None:
    with page.expect_request(lambda request: request.method == "POST") as posted:
        start(page, 1)

    cookie = {c["name"]: c["value"] for c in page.context.cookies()}["csrftoken"]
    assert posted.value.headers["x-csrftoken"] == cookie
    assert posted.value.url.endswith("/async/shop:report/order/")
    wait_until(lambda: status(page) == "completed", what="the order to complete")


def test_the_module_and_the_classic_script_are_one_client(page: Any) -> None:
    same = page.evaluate(
        """async () => {
            const module = await import("/static/async_orders/async-orders.mjs");
            const global = window.AsyncOrders;
            return module.Client === global.Client && module.default === global;
        }"""
    )
    page.goto("/static/async_orders/async-orders.mjs")  # a page without the client
    page.add_script_tag(url="/static/async_orders/async-orders.js")

    assert same is True
    assert page.evaluate("typeof AsyncOrders.run") == "function"


def test_an_unknown_view_rejects_with_an_http_error(page: Any) -> None:
    error = page.evaluate(
        """async () => {
            const { Client, HttpError } = await import("/static/async_orders/async-orders.mjs");
            try { await new Client().run("no-such-view"); } catch (error) {
                return { http: error instanceof HttpError, status: error.status, code: error.code };
            }
        }"""
    )

    assert error == {"http": True, "status": 404, "code": "unknown_view"}


def test_a_failure_rejects_with_order_failed_error_carrying_the_error(page: Any) -> None:
    error = page.evaluate(
        """async () => {
            const A = await import("/static/async_orders/async-orders.mjs");
            try { await A.run("shop:report", { kwargs: { size: 13 } }); } catch (error) {
                return { failed: error instanceof A.OrderFailedError, error: error.error };
            }
        }"""
    )

    assert error["failed"] is True
    assert error["error"]["code"] == "exception"
    assert error["error"]["message"] == "The oven broke down."


def test_the_client_long_polls_when_the_server_offers_it(page: Any) -> None:
    result = page.evaluate(
        """async () => {
            const A = await import("/static/async_orders/async-orders.mjs");
            const urls = [];
            const recording = (url, init) => { urls.push(String(url)); return fetch(url, init); };
            const longPolling = new A.Client({ fetch: recording });
            const order = await longPolling.run("shop:report", { kwargs: { size: 5 } });
            const polls = urls.filter((url) => url.includes("/async/orders/"));
            const longPolls = polls.filter((url) => url.includes("wait=20"));
            return { status: order.status, polls, longPolls };
        }"""
    )

    assert result["status"] == "completed"
    assert result["longPolls"]
    assert len(result["polls"]) <= 12  # five lines, ~0.1 s each: change-driven, no busy loop


def test_aborting_a_queued_order_cancels_it_at_once(page: Any) -> None:
    result = page.evaluate(
        """async () => {
            const A = await import("/static/async_orders/async-orders.mjs");
            const controller = new AbortController();
            const seen = [];
            const running = A.run("shop:report", { kwargs: { size: 5 }, countdown: 3600 }, {
                signal: controller.signal, onProgress: (order) => {
                    seen.push(order.status);
                    controller.abort();
                },
            });
            try { await running; } catch (error) {
                const canceled = error instanceof A.OrderCanceledError;
                return { canceled, status: error.order.status, seen };
            }
        }"""
    )

    assert result == {"canceled": True, "status": "canceled", "seen": ["scheduled"]}


@pytest.mark.parametrize(
    ("retry_after", "attempt", "expected_ms"),
    [("2", 0, 2000), ("3600", 0, 5000), (None, 0, 100), (None, 3, 800), ("soon", 1, 200)],
)
def test_poll_delay_honours_retry_after_with_a_cap_and_backs_off_without(
    page: Any, retry_after: str | None, attempt: int, expected_ms: int
) -> None:
    delay = page.evaluate(
        "([header, attempt]) => AsyncOrders.pollDelay(header, attempt,"
        " { interval: 100, backoff: 2, maxInterval: 5000 })",
        [retry_after, attempt],
    )

    assert delay == expected_ms


def test_a_batch_shows_one_bar_per_order_and_one_for_the_batch(page: Any) -> None:
    page.fill("#batch-count", "3")
    page.fill("#batch-size", "15")  # sizes 15, 16, 17: none is the unlucky one

    page.click("#start-batch")

    def overall() -> float:
        return float(page.eval_on_selector("#batch-bar", "bar => bar.value"))

    wait_until(lambda: 0 < overall() < 100, what="the batch's bar to move")
    wait_until(
        lambda: page.get_attribute("#batch-status", "data-status") == "finished",
        timeout=30,
        what="the batch to finish",
    )
    item_bars = page.eval_on_selector_all("#batch-bars progress", "bars => bars.map(b => b.value)")
    assert item_bars == [100, 100, 100]
    assert overall() == 100
    assert page.text_content("#batch-status") == "3 of 3 finished (100%)"
