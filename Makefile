# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv from the pinned set in constraints.txt when it is missing or stale.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck dev mlflow-ui clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/mlplatform demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/python -m ruff check .

# Modules under mypy so far ([tool.mypy] in pyproject.toml); add a module once it checks clean.
TYPECHECKED := $(addprefix mlplatform/core/,distributed.py tuning.py tracking.py cost.py system_score.py metrics.py \
	pit_join.py warehouse.py features.py transforms.py training.py drift.py retraining.py profiling.py \
	leakage.py evaluation.py calibration.py promotion.py report.py model_card.py quality.py datasets.py \
	table_features.py brief_draft.py ingestion.py io.py demo_data.py budgets.py markdown.py models.py \
	torch_model.py pyfunc.py pyfunc_model_code.py) mlplatform/brief.py mlplatform/settings.py \
	mlplatform/cli.py mlplatform/runner.py mlplatform/definitions.py mlplatform/profiles.py \
	mlplatform/resources/platform.py $(addprefix mlplatform/defs/,features.py governance.py ingestion.py rollout.py)

typecheck: install
	$(BIN)/python -m mypy $(TYPECHECKED)

dev: install
	mkdir -p data/dagster_home
	test -f data/dagster_home/dagster.yaml || printf 'telemetry:\n  enabled: false\n' > data/dagster_home/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/data/dagster_home MLPLATFORM_DATA_DIR=$(CURDIR)/data $(BIN)/dagster dev

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/data/churn_demo/mlflow/mlflow.db

clean:
	rm -rf $(VENV) data/*/ .pytest_cache
