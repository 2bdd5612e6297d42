# Two commands do all the set-up on a machine with only Python 3.11:
#   make demo   - web server + Celery worker + broker; Ctrl-C stops all of it
#   make test   - the whole test suite, the browser tests and the docs build
#   make bench  - the benchmarks of docs/performance.md (PostgreSQL and Redis on loopback)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_INSTALLED := $(VENV)/.demo-installed
CHROMIUM ?= /usr/bin/chromium
# Several parts of `make test` may install a Debian package at once: each waits for
# dpkg's lock instead of failing.
APT_GET := apt-get -o DPkg::Lock::Timeout=600

.PHONY: matrix demo test test-main test-hosts test-embedded test-pgbouncer lint format docs browser clean bench bench-peers profile

# The demo's packages only (requirements-demo.txt); `make test` adds the test,
# docs and packaging tools on top (requirements-dev.txt).
$(DEMO_INSTALLED): setup.cfg pyproject.toml requirements-demo.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-demo.txt
	touch $@

$(INSTALLED): $(DEMO_INSTALLED) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(DEMO_INSTALLED)
	$(BIN)/python -m demo.run

# Real PostgreSQL and Redis when they answer (required under CI=true), then the
# integration tests once more on the embedded default (SQLite + private Redis),
# the docs, and the unit tests on every Python x Django this machine can run.
# The browser tests skip without Chromium (and fail under CI=true).
# tools/test_all.py runs these parts, several at once (the fault tests mostly wait
# on leases), and ends with a table of each part's result, minutes (wall and CPU)
# and test counts.
# About 10 minutes (15-18 CPU-minutes) on 2 idle cores with a warm .venv, measured (README.md).
test:
	@MAKE="$(MAKE)" $(PYTHON) tools/test_all.py

# pytest-xdist workers of the main run and of the embedded rerun; each has its own
# queue, scratch directory and test database (tests/services.py).
TEST_JOBS ?= 4
EMBEDDED_JOBS ?= 3
XDIST = --dist loadgroup --no-loadscope-reorder -n

# The tests that measure delays in milliseconds (marked latency) run after the others,
# in one process: beside busy xdist workers on 2 cores they would measure the wait
# for a CPU.
# The main pytest run alone.
test-main: $(INSTALLED)
	$(BIN)/python -m pytest $(XDIST) $(TEST_JOBS) -m "not latency and not hosts"
	$(BIN)/python -m pytest -m latency

# The partitions between hosts (tests/test_hosts.py, network namespaces): each waits
# out minute-long cuts with the shipped leases, so each has an xdist worker of its own,
# and make test runs them beside the main run. They skip without root and ip netns
# (they fail instead under CI=true).
HOSTS_JOBS ?= 6
test-hosts: $(INSTALLED)
	@if ! command -v iptables >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing iptables for the test bed's lossy links"; \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq iptables >/dev/null 2>&1 \
		|| { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq iptables >/dev/null; } \
		|| echo "iptables could not be installed: the hosts tests will skip (fail under CI=true)"; \
	fi
	$(BIN)/python -m pytest --dist load -n $(HOSTS_JOBS) -m hosts tests/test_hosts.py

EMBEDDED_MARKS = integration and not postgres_server and not default_leases and not fresh_project \
	and not high_availability and not hosts
test-embedded: $(INSTALLED)
	ASYNC_ORDERS_TEST_SERVICES=embedded $(BIN)/python -m pytest $(XDIST) $(EMBEDDED_JOBS) \
		-m "$(EMBEDDED_MARKS) and not latency"
	ASYNC_ORDERS_TEST_SERVICES=embedded $(BIN)/python -m pytest -m "$(EMBEDDED_MARKS) and latency"

# The integration tests of placing, polling, long-polls, event streams, cancels,
# retries, the reconciler, leases and the cap once more, every process connecting to
# a private PostgreSQL through a private PgBouncer in transaction pooling
# (tests/pgbouncer.py; installs Debian's pgbouncer when missing, as root).
PGBOUNCER_TESTS = tests/test_integration.py tests/test_waiting.py tests/test_cancel_order.py \
	tests/test_retries.py tests/test_reconciler.py tests/test_heartbeat.py \
	tests/test_idempotency_and_limits.py tests/test_worker_presence.py tests/test_faults.py \
	tests/test_place_order.py tests/test_poll_order.py
test-pgbouncer: $(INSTALLED)
	$(BIN)/python -m tests.pgbouncer $(PGBOUNCER_TESTS) -m "not latency" $(XDIST) 2

# The unit tests on every Python 3.11-3.13 x Django 5.2/6.0/6.1 (noxfile.py); nox
# says which combinations it skipped and why (no such interpreter here, or a Django
# that does not support that Python). One session after another here; `make test`
# runs them several at once.
# pyenv's interpreters are found without `pyenv global` naming them.
PYENV_BINS := $(subst $() ,:,$(wildcard $(HOME)/.pyenv/versions/3.*/bin))
matrix: $(INSTALLED)
	PATH="$(PYENV_BINS):$$PATH" $(BIN)/nox $(ARGS)

# Debian's Chromium for the browser tests, when it is missing and we may install it.
browser:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$(APT_GET) install -y -qq chromium >/dev/null 2>&1 \
		|| { $(APT_GET) update -qq && $(APT_GET) install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the browser tests will skip (fail under CI=true)"; \
	fi

# The documentation, warnings as errors.
docs: $(INSTALLED)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

BENCH_INSTALLED := $(VENV)/.bench-installed

$(BENCH_INSTALLED): $(INSTALLED) benchmarks/requirements.txt
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	command -v wrk >/dev/null || $(APT_GET) install -y wrk || ($(APT_GET) update && $(APT_GET) install -y wrk)
	touch $@

# Timing benchmarks: not part of `make test`; about 10 minutes on 2 cores.
bench: $(BENCH_INSTALLED)
	$(BIN)/python -m benchmarks.run

# Rows 8-11 alone (async_orders against its peers); a quick run of the machinery:
#   make bench-peers ARGS="--jobs 50 --seconds 1 --samples 3 --runs 1"
bench-peers: $(BENCH_INSTALLED)
	$(BIN)/python -m benchmarks.peers $(ARGS)

# pyinstrument call trees of the hot paths, e.g. `make profile PATHS="poll retrieve"`.
profile: $(BENCH_INSTALLED)
	$(BIN)/python -m benchmarks.profile $(PATHS)

# ruff, mypy (with the Django and DRF stubs; configured in pyproject.toml), and no
# import cycle among async_orders' modules (tools/import_cycles.py).
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python tools/import_cycles.py async_orders

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) demo/var docs/_build .pytest_cache .ruff_cache .test-logs
