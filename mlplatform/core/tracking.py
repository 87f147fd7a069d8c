"""The method's experiment record in MLflow, the model registry with aliases, and dataset content hashes.

Everything goes through an explicit ``MlflowClient(tracking_uri)``: nothing reads or changes MLflow's
global tracking URI, so nothing lands in a default ``./mlruns``. Locally the backend is SQLite
(``sqlite:///<dir>/mlflow.db``; the file store is deprecated) with artifacts in a folder the caller names.
"""

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

import polars as pl
import yaml

from mlplatform.core.io import FileVersion, file_version, read_parquet_verified

# MLflow (about 2 s to import) is imported by the functions that call it, never when this module loads. Set
# before it is: its telemetry client starts at import time and would try the network; the artifact progress
# bars would clutter asset logs. setdefault leaves a user's explicit choice alone.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# Creating a fresh SQLite backend runs MLflow's migrations, which log every step at INFO.
for _name in ("mlflow.store.db.utils", "alembic"):
    logging.getLogger(_name).setLevel(logging.WARNING)

Verdict = Literal["promoted", "archived", "iterate"]
EXPERIMENT_YAML = "experiment.yaml"
PLOTS_ARTIFACT_PATH = "plots"
MODEL_ARTIFACT_PATH = "model"
# The same candidate as an MLflow pyfunc model (logged as code, nothing pickled), beside the plain files.
PYFUNC_ARTIFACT_PATH = "pyfunc"
_EXP_TAG = "exp_id"
# An experiment's artifact root relative to the SQLite store's folder, so a copied store finds its own files.
ARTIFACT_ROOT_TAG = "mlplatform.artifact_root"
# MLflow's limits on one param value and one log_batch call.
_MAX_PARAM_LENGTH = 6000
_PARAMS_PER_BATCH = 100


@dataclass
class ExperimentRecord:
    """The method's experiment template; ``id`` is assigned when the record is logged."""

    hypothesis: str
    dataset_version: str
    features_used: list[str]
    model_type: str
    hyperparameters: dict[str, Any]
    training_time_s: float
    primary_metric: dict[str, float]
    secondary_metrics: dict[str, float]
    baseline_comparison: str
    verdict: Verdict
    notes: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)


def client_for(tracking_uri: str) -> "MlflowClient":
    """A client on ``tracking_uri`` (tracking and registry), creating the SQLite file's folder if needed.

    The first client on a new SQLite file runs MLflow's schema migrations (about 4 s); later ones are fast.
    A SQLite store's artifact roots are first pointed at the folder the file is in now
    (:func:`relocate_artifact_roots`), so a copied or moved data directory reads its own artifacts.

    Raises:
        ValueError: an empty URI, which MLflow would silently replace by ``./mlruns``.
    """
    from mlflow.tracking import MlflowClient

    if not tracking_uri:
        raise ValueError("tracking_uri is empty; pass e.g. sqlite:///<data_dir>/<brief>/mlflow/mlflow.db")
    database = _sqlite_file(tracking_uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        relocate_artifact_roots(database)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other backend."""
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def relocate_artifact_roots(database: Path) -> None:
    """Point each experiment whose artifact root lies beside the SQLite ``database`` at that root's place now.

    MLflow stores absolute ``file://`` URIs (an experiment's artifact location, each run's artifact URI, a
    logged model's location, a model version's storage location). Copied elsewhere, the store would read the
    original's files, or fail once they are gone. So an experiment created under the store's folder records
    its root relative to that folder (the ``mlplatform.artifact_root`` tag), and this rewrites the absolute URIs
    of every such experiment whose recorded root is not where the database is now. An experiment created
    before the tag existed gets it here while its root is still beside the database. Writes only when
    something moved; other backends and experiments with roots elsewhere are left alone.
    """
    if not database.is_file():
        return
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as con, con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"experiments", "experiment_tags", "runs"} <= tables:
            return  # a new file MLflow has not set up yet
        rows = con.execute("SELECT e.experiment_id, e.artifact_location, t.value FROM experiments e "
                           "LEFT JOIN experiment_tags t ON t.experiment_id = e.experiment_id AND t.key = ?",
                           (ARTIFACT_ROOT_TAG,)).fetchall()
        folder = database.resolve().parent
        for experiment_id, location, relative in rows:
            if relative is None:
                _tag_root_beside_database(con, experiment_id, location, folder)
                continue
            current = (folder / relative).as_uri()
            if location != current:
                _rewrite_artifact_prefix(con, tables, experiment_id, location, current)


def _tag_root_beside_database(con: sqlite3.Connection, experiment_id: int, location: str, folder: Path) -> None:
    """Record an untagged experiment's root relative to ``folder`` if it lies under it."""
    if not (location or "").startswith("file://"):
        return
    root = Path(url2pathname(urlparse(location).path))
    if root.is_relative_to(folder):
        # OR IGNORE: another process opening the same store may tag it first (the tag is the same)
        con.execute("INSERT OR IGNORE INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?)",
                    (ARTIFACT_ROOT_TAG, root.relative_to(folder).as_posix(), experiment_id))


def _rewrite_artifact_prefix(con: sqlite3.Connection, tables: set[str], experiment_id: int, old: str,
                             new: str) -> None:
    """Replace the root ``old`` by ``new`` in every stored URI of one experiment (MLflow's SQL schema)."""
    con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (new, experiment_id))
    moved = "? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?"
    prefix = (new, len(old) + 1, len(old) + 1, old + "/")
    con.execute(f"UPDATE runs SET artifact_uri = {moved.format(column='artifact_uri')} AND experiment_id = ?",
                (*prefix, experiment_id))
    if "logged_models" in tables:
        con.execute(f"UPDATE logged_models SET artifact_location = {moved.format(column='artifact_location')} "
                    "AND experiment_id = ?", (*prefix, experiment_id))
    if "model_versions" in tables:
        for column in ("storage_location", "source"):
            con.execute(f"UPDATE model_versions SET {column} = {moved.format(column=column)}", prefix)


def _artifact_root_tag(tracking_uri: str, artifact_dir: Path) -> dict[str, str]:
    """The ``mlplatform.artifact_root`` tag of a new experiment whose root is under the SQLite store's folder."""
    database = _sqlite_file(tracking_uri)
    if database is None or not artifact_dir.resolve().is_relative_to(database.resolve().parent):
        return {}
    return {ARTIFACT_ROOT_TAG: artifact_dir.resolve().relative_to(database.resolve().parent).as_posix()}


def experiment_id_for(client: "MlflowClient", experiment_name: str, day: date) -> str:
    """The next free ``EXP-YYYY-MM-DD-NNN`` id of ``day`` in the experiment (deleted runs keep theirs).

    Ids are allocated by reading existing tags, so two runs logged concurrently could get the same id;
    the platform logs runs one at a time.
    """
    from mlflow.entities import ViewType

    prefix = f"EXP-{day.isoformat()}-"
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return f"{prefix}001"
    runs = client.search_runs([experiment.experiment_id], f"tags.{_EXP_TAG} LIKE '{prefix}%'",
                              run_view_type=ViewType.ALL, max_results=1000)
    taken = [int(run.data.tags[_EXP_TAG].removeprefix(prefix)) for run in runs]
    return f"{prefix}{max(taken, default=0) + 1:03d}"


def _plain(value: Any) -> Any:
    """JSON/YAML-safe copy: numpy scalars become Python numbers, anything else odd becomes text."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def ensure_experiment(client: "MlflowClient", tracking_uri: str, experiment_name: str, artifact_dir: Path) -> str:
    """The id of ``experiment_name``, created with its artifacts in ``artifact_dir`` (tagged relative to the
    tracking database, so a copied data directory finds them) when it does not exist yet."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_dir.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(experiment_name, artifact_location=artifact_dir.resolve().as_uri(),
                                    tags=_artifact_root_tag(tracking_uri, artifact_dir))


def log_run(tracking_uri: str, artifact_dir: Path, experiment_name: str, run_name: str, params: dict[str, Any],
            metrics: dict[str, float]) -> str:
    """One finished MLflow run of ``experiment_name`` with ``params`` (as text) and ``metrics``; its id."""
    client = client_for(tracking_uri)
    run_id = client.create_run(ensure_experiment(client, tracking_uri, experiment_name, artifact_dir),
                               run_name=run_name).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, str(value))
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id)
    return run_id


def log_experiment(
    tracking_uri: str,
    artifact_dir: Path,
    experiment_name: str,
    record: ExperimentRecord,
    model_dir: Path | None,
    day: date | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Log one training run with the method's experiment template.

    Hyperparameters become params; primary and secondary metrics (and ``training_time_s``) become metrics;
    the id, hypothesis, dataset version, model type, verdict and baseline comparison become tags; the whole
    record is the ``experiment.yaml`` artifact and ``model_dir`` is logged under ``model/`` (the files the
    registry and serving read) and, as an MLflow pyfunc model, under ``pyfunc/``: load it with
    ``mlflow.pyfunc.load_model(f"runs:/{run_id}/pyfunc")``.

    Args:
        tracking_uri: the backend, e.g. ``sqlite:///<dir>/mlflow.db``.
        artifact_dir: where a new experiment stores artifacts (an existing experiment keeps its own).
        experiment_name: MLflow experiment, e.g. the brief's name.
        record: what to log.
        model_dir: a saved model folder, or None for baselines.
        day: the date in the experiment id; today when None.
        tags: more run tags, e.g. the orchestrator's run id.

    Returns:
        The MLflow run id; the ``EXP-…`` id is the run's ``exp_id`` tag and run name.
    """
    from mlflow.entities import Metric, Param

    from mlplatform.core.pyfunc import save_pyfunc

    if record.verdict not in ("promoted", "archived", "iterate"):
        raise ValueError(f"verdict must be promoted, archived or iterate; got '{record.verdict}'")
    client = client_for(tracking_uri)
    experiment_id = ensure_experiment(client, tracking_uri, experiment_name, artifact_dir)
    exp_id = experiment_id_for(client, experiment_name, day or date.today())
    tags = {
        _EXP_TAG: exp_id,
        "hypothesis": record.hypothesis,
        "dataset_version": record.dataset_version,
        "model_type": record.model_type,
        "verdict": record.verdict,
        "baseline_comparison": record.baseline_comparison,
        **(tags or {}),
    }
    run_id = client.create_run(experiment_id, tags=tags, run_name=exp_id).info.run_id
    try:
        hyperparameters = sorted(record.hyperparameters.items())
        params = [Param(str(k), str(v)[:_MAX_PARAM_LENGTH]) for k, v in hyperparameters]
        metrics = {**record.primary_metric, **record.secondary_metrics,
                   "training_time_s": record.training_time_s}
        now_ms = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now_ms, 0) for k, v in metrics.items()])
        for start in range(0, len(params), _PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[start:start + _PARAMS_PER_BATCH])
        artifacts = dict(record.artifacts)
        for name, value in record.artifacts.items():  # files named in the record travel with the run
            if Path(value).is_file():
                client.log_artifact(run_id, value, PLOTS_ARTIFACT_PATH)
                artifacts[name] = f"runs:/{run_id}/{PLOTS_ARTIFACT_PATH}/{Path(value).name}"
        if model_dir is not None:
            client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
            artifacts["model_path"] = f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}"
            with tempfile.TemporaryDirectory() as scratch:
                pyfunc_dir = save_pyfunc(model_dir, Path(scratch) / PYFUNC_ARTIFACT_PATH)
                client.log_artifacts(run_id, str(pyfunc_dir), PYFUNC_ARTIFACT_PATH)
            artifacts["pyfunc_model"] = f"runs:/{run_id}/{PYFUNC_ARTIFACT_PATH}"
        # The method's template layout, so the YAML reads like the methodology's own example.
        document = {
            "id": exp_id,
            "run_id": run_id,
            "hypothesis": record.hypothesis,
            "dataset_version": record.dataset_version,
            "features_used": record.features_used,
            "model_type": record.model_type,
            "hyperparameters": record.hyperparameters,
            "training_time": f"{record.training_time_s:.2f}s",
            "metrics": {"primary": record.primary_metric, "secondary": record.secondary_metrics},
            "baseline_comparison": record.baseline_comparison,
            "verdict": record.verdict,
            "notes": record.notes,
            "artifacts": artifacts,
        }
        text = yaml.safe_dump({"experiment": _plain(document)}, sort_keys=False)
        client.log_text(run_id, text, EXPERIMENT_YAML)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


# Optuna trial states as MLflow run statuses: a pruned trial was stopped on purpose, not broken.
_TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
_TRIAL_METRICS = ("duration_s", "best_iteration", "last_reported_round")


def log_tuning_trials(
    tracking_uri: str, parent_run_id: str, trials: pl.DataFrame, metric: str, param_columns: Sequence[str]
) -> list[str]:
    """Log each tuning trial as a child run of the candidate's run, after the study finished.

    Logging afterwards keeps MLflow out of the tuning loop: a trial costs nothing extra while it runs, and
    the whole batch costs a few SQLite writes per trial. Each child run carries the trial's parameters, its
    value as ``metric`` (completed trials only: a pruned trial has no comparable value), duration, best and
    last boosting round, the state as the ``optuna_state`` tag and as its status (COMPLETE: FINISHED,
    PRUNED: KILLED, FAIL: FAILED) and the trial's real start and end times.

    Args:
        tracking_uri: the backend of the parent run.
        parent_run_id: the candidate's run (from :func:`log_experiment`); children go into its experiment.
        trials: one row per trial with ``number``, ``state``, ``value``, ``started_at``, ``duration_s`` and the
            ``param_columns`` (as in ``TuningResult.new_trials``).
        metric: the name the trial value is logged under, e.g. the brief's primary metric.
        param_columns: the columns that are hyperparameters.

    Returns:
        The child run ids in the order of ``trials``.

    Raises:
        ValueError: a required column is missing.
    """
    missing = [c for c in ("number", "state", "value", "started_at", "duration_s", *param_columns)
               if c not in trials.columns]
    if missing:
        raise ValueError(f"the trials frame lacks columns {missing}; pass TuningResult.new_trials")
    from mlflow.entities import Metric, Param

    client = client_for(tracking_uri)
    parent = client.get_run(parent_run_id)
    parent_name = parent.data.tags.get(_EXP_TAG, parent.info.run_name or parent_run_id)
    run_ids = []
    for trial in trials.iter_rows(named=True):
        started = trial["started_at"]  # Optuna's naive local time, which timestamp() reads as local
        start_ms = int(started.timestamp() * 1000) if started else None
        end_ms = start_ms + int((trial["duration_s"] or 0) * 1000) if start_ms is not None else None
        tags = {"mlflow.parentRunId": parent_run_id, "optuna_trial": str(trial["number"]),
                "optuna_state": trial["state"]}
        run = client.create_run(parent.info.experiment_id, start_time=start_ms, tags=tags,
                                run_name=f"{parent_name}-trial-{trial['number']:03d}")
        values = {name: trial[name] for name in _TRIAL_METRICS if trial.get(name) is not None}
        if trial["state"] == "COMPLETE" and trial["value"] is not None:
            values[metric] = trial["value"]
        timestamp = end_ms or int(time.time() * 1000)
        client.log_batch(run.info.run_id,
                         metrics=[Metric(name, float(value), timestamp, 0) for name, value in values.items()],
                         params=[Param(name, str(trial[name])) for name in param_columns if trial[name] is not None])
        client.set_terminated(run.info.run_id, status=_TRIAL_STATUS.get(trial["state"], "FAILED"), end_time=end_ms)
        run_ids.append(run.info.run_id)
    return run_ids


def set_verdict(tracking_uri: str, run_id: str, verdict: str) -> None:
    """Record the experiment's final verdict (promoted | archived | iterate) once the promotion gate decided."""
    if verdict not in ("promoted", "archived", "iterate"):
        raise ValueError(f"verdict must be promoted, archived or iterate; got '{verdict}'")
    client = client_for(tracking_uri)
    client.set_tag(run_id, "verdict", verdict)
    # The run's experiment record (the method's template) says the same: one verdict, wherever it is read.
    record = experiment_record(tracking_uri, run_id)
    if record is not None:
        record["verdict"] = verdict
        client.log_text(run_id, yaml.safe_dump({"experiment": record}, sort_keys=False), EXPERIMENT_YAML)


def experiment_record(tracking_uri: str, run_id: str) -> dict | None:
    """The run's ``experiment.yaml`` record (the method's experiment template); None when the run has none."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = client_for(tracking_uri).download_artifacts(run_id, EXPERIMENT_YAML, scratch)
        except (MlflowException, OSError):
            return None
        return (yaml.safe_load(Path(path).read_text()) or {}).get("experiment")


def register_model(
    tracking_uri: str, model_name: str, run_id: str, artifact_path: str = MODEL_ARTIFACT_PATH
) -> str:
    """Register the run's ``artifact_path`` as a new version of ``model_name``; returns the version."""
    from mlflow.exceptions import MlflowException

    client = client_for(tracking_uri)
    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(model_name, f"runs:/{run_id}/{artifact_path}", run_id=run_id)
    return str(version.version)


def set_alias(tracking_uri: str, model_name: str, alias: str, version: str) -> None:
    """Point ``alias`` (``challenger``, ``champion``) at ``version``, moving it off any other version."""
    client_for(tracking_uri).set_registered_model_alias(model_name, alias, version)


def get_alias_version(tracking_uri: str, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client_for(tracking_uri).get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        # MLflow reports a missing model and a missing alias with different codes.
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def download_model_version(tracking_uri: str, model_name: str, version: str, destination: Path) -> Path:
    """Copy a registered version's files into ``destination``; returns the model folder.

    Use it to re-score the champion on the current test set: metrics logged with an older run were
    measured on an older hold-out and are not comparable.
    """
    client = client_for(tracking_uri)
    model_version = client.get_model_version(model_name, version)
    run_id, source = model_version.run_id, model_version.source or ""
    if run_id is None or not source.startswith(f"runs:/{run_id}/"):
        raise ValueError(f"{model_name} version {version} (source {source!r}) was not registered from a run's "
                         "artifacts; register it with register_model")
    destination.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, source.removeprefix(f"runs:/{run_id}/"), str(destination)))


# dataset_version of Parquet files already hashed by this process, by file version (core.io.file_version).
_FILE_VERSIONS: dict[FileVersion, str] = {}


def file_dataset_version(path: Path, frame: pl.DataFrame | None = None) -> str:
    """:func:`dataset_version` of the frame stored in the Parquet file ``path``, computed once per file version per
    process: the graph's steps (one process in ``mlplatform demo``) record the training set's version with every
    candidate, and hashing it costs a sort and a CSV rendering of every row.

    Args:
        path: a Parquet file the platform wrote (read checksum-verified when the version is not known yet).
        frame: the file's content when the caller holds it already (it has just written it); None reads the file.
    """
    key = file_version(path)
    if key not in _FILE_VERSIONS:
        _FILE_VERSIONS[key] = dataset_version(read_parquet_verified(path) if frame is None else frame)
    return _FILE_VERSIONS[key]


def dataset_version(frame: pl.DataFrame) -> str:
    """A content hash of ``frame`` that ignores column order and row order.

    Hashes the schema plus the CSV text of the rows sorted by every column: CSV formatting is fixed by the
    values alone, unlike polars' row hashes, which may change between polars versions.

    Returns:
        16 hex characters of a SHA-256.
    """
    columns = sorted(frame.columns)
    ordered = frame.select(columns)
    if ordered.height and columns:
        ordered = ordered.sort(columns, nulls_last=True, maintain_order=False)
    digest = hashlib.sha256()
    digest.update(json.dumps([[name, str(ordered.schema[name])] for name in columns]).encode())
    digest.update(ordered.write_csv(include_header=False).encode())
    return digest.hexdigest()[:16]
