# Developer entry points. Each target creates .venv on first use and (re)installs the
# project only when pyproject.toml is newer than the matching .venv/.installed-<extras> stamp.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Two workers, each with its own embedded server: on a 2-core machine the suite's wall time
# is about 1.5x shorter than on one (measured); PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2

.PHONY: demo chat-api lint test smoke-extras bench bench-full load clean compat

demo: $(VENV)/.installed-embedded
	$(BIN)/python examples/quickstart.py

# The example chat service (FastAPI) on the embedded server: http://127.0.0.1:8000/docs
chat-api: $(VENV)/.installed-examples
	$(BIN)/python examples/chat_api.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check caas_data tests examples benchmarks
	$(BIN)/mypy caas_data

# pytest exits 5 when it collected no test: like any non-zero exit, that fails the target.
test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# Each extra set alone (embedded; embedded,fastapi; embedded,security) in a fresh venv:
# the package imports, a feature without its extra names it, and the demo runs. CI runs it.
smoke-extras:
	PYTHON=$(PYTHON) bash .ci/extras_smoke.sh

# The benchmark (benchmarks/): the layer against raw PyMongo, the typed floor and plain Beanie
# on one embedded server; results in benchmarks/results/. Quick profile: under 5 minutes.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks --profile quick
	$(BIN)/python -m benchmarks.field_encryption

# Bigger iterations and a conversation of 1M messages (about half an hour).
bench-full: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks --profile full
	$(BIN)/python -m benchmarks.field_encryption
	$(BIN)/python -m benchmarks.migrations

# The long load profile: hot-group vs spread send rates (a ratio), 200 mixed tasks over 10
# tenants, then raw-client checks. Prints numbers; CI runs only tests/load (correctness).
load: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.load $(LOAD_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[$*]'
	touch $@

.PRECIOUS: $(VENV)/.installed-%

# Beanie's own ODM tests on the tenant base (issue 11): COMPAT_MODEL=free|starter|pro|enterprise|plain,
# or all (free, pro and enterprise one after the other on one server; the plain run is cached).
# BEANIE_TESTS=a folder with Beanie's tests/ and pyproject.toml (or a git checkout of Beanie).
# Prints plain and tenant counts and every test that passes on plain Beanie only (reports in .compat/).
COMPAT_MODEL ?= free
BEANIE_TESTS ?=
compat: $(VENV)/.installed-compat
	COMPAT_MODEL=$(COMPAT_MODEL) BEANIE_TESTS=$(BEANIE_TESTS) $(BIN)/python compat/beanie_compat.py $(PYTEST_ARGS)
