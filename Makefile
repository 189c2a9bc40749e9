# Every target sets up .venv itself: a fresh clone needs only Python >= 3.11 and RabbitMQ.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test docs demo bench clean

$(BIN)/bulkworker: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast,docs]'
	touch $@

install: $(BIN)/bulkworker

# Test processes: the suite mostly waits on RabbitMQ and on the processes it starts,
# so more processes than cores pay (docs/testing.md has the measurements).
TEST_WORKERS ?= 4

## Lint, format check, strict types, the docs site, then the whole test suite (needs RabbitMQ).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir .site
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

## Serve the documentation site on http://127.0.0.1:8000, rebuilt on every change.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

## The main job: publish sample items, store them in bulk in SQLite, show the result.
demo: install
	$(BIN)/python examples/demo.py

## Throughput against plain aio-pika, and peak RSS (takes a few minutes).
bench: install
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache *.egg-info .site demo-items.db
