# Two commands do all the set-up on a machine with only Python 3.11:
#   make demo   - web server + Celery worker + broker; Ctrl-C stops all of it
#   make test   - the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-embedded lint format clean

$(INSTALLED): setup.cfg pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(INSTALLED)
	$(BIN)/python -m demo.run

# Real PostgreSQL and Redis when they answer (required under CI=true), then the
# integration tests once more on the embedded default (SQLite + private Redis).
test: $(INSTALLED) lint
	$(BIN)/python -m pytest
	$(MAKE) test-embedded

test-embedded: $(INSTALLED)
	ASYNC_ORDERS_TEST_SERVICES=embedded $(BIN)/python -m pytest -m integration

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) demo/var .pytest_cache .ruff_cache
