# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv from the pinned set in constraints.txt when it is missing or stale.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint typecheck dev mlflow-ui clean mutation

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/mlplatform demo

# pytest-xdist workers: each test file stays on one worker and every test of the session's demo run shares one, so
# the whole graph runs once; the longest groups start first (the groups and their order: mlplatform_tests/conftest.py).
# Three on two cores: the living loop's worker mostly waits while the daemon's processes work, so a third worker
# keeps both cores busy (same commit, fresh clone: 850 s with three, 951 s with two; docs/testing.md).
TEST_WORKERS ?= 3
XDIST = --dist loadgroup --no-loadscope-reorder
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(XDIST)

# The unit tests only: core functions on small in-memory data and the asset-graph snapshot; no whole-graph run
# (the session's demo_run fixture), no GPU. Left out as well: the two unit tests that start child processes
# (racing promotions, the GPU check script); `make test` runs them. See docs/testing.md for the timings.
FAST_TESTS ?= mlplatform_tests/core mlplatform_tests/test_asset_graph_snapshot.py mlplatform_tests/test_draft_brief.py
FAST_SKIP ?= racing_promotions or gpu_check_script
# Unit tests keep their worker's core busy all the time: one worker per core.
FAST_WORKERS ?= 2
test-fast: install
	$(BIN)/python -m pytest $(FAST_TESTS) -n $(FAST_WORKERS) $(XDIST) -q -p no:cacheprovider -m "not slow and not integration and not gpu and not fault" \
		-k "not ($(FAST_SKIP))"

lint: install
	$(BIN)/python -m ruff check .

typecheck: install
	$(BIN)/python -m mypy mlplatform

# Mutation testing of the gate functions (slow; not in CI): mutmut mutates a copy under ./mutants and runs the
# unit tests covering each mutant; then the kill rate per module. Narrow it: make mutation MUTANTS='mlplatform.core.drift.*'
MUTANTS ?= $(shell grep '^mlplatform' scripts/mutation_gates.txt)
MUTATION_JOBS ?= 2
mutation: install
	$(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(foreach m,$(MUTANTS),'$(m)')
	$(BIN)/python scripts/mutation_summary.py $(foreach m,$(MUTANTS),'$(m)')

dev: install
	mkdir -p data/dagster_home
	test -f data/dagster_home/dagster.yaml || printf 'telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: true\n  start_timeout_seconds: 180\n  max_runtime_seconds: 7200\n' > data/dagster_home/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/data/dagster_home MLPLATFORM_DATA_DIR=$(CURDIR)/data $(BIN)/dagster dev

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/data/churn_demo/mlflow/mlflow.db

clean:
	rm -rf $(VENV) data/*/ .pytest_cache
