"""The lake's table catalogue: every Parquet table a stage writes or reads, by (layer, name), in one place.

Assets and checks read and write tables through these constants (``platform.read_table(TRAINING_SET)``), never
through literal ``("layer", "name")`` pairs, so a table's name is spelled once and a reader names the same table
its writer does. Tables whose name depends on the brief (a source, the entity, a candidate model) are built by the
functions below. Each table is exposed in the DuckDB warehouse as the view :attr:`Table.view`
(``{layer}_{name}``); the tables that later stages read are also assets of the lineage graph, keyed by that view
name (:attr:`Table.asset_key`).

Pure data: importing this module imports nothing heavier than :mod:`mlplatform.core.feature_names`.
"""

from dataclasses import dataclass

from mlplatform.core.feature_names import feature_view_name


@dataclass(frozen=True)
class Table:
    """One lake table: ``lake/{layer}/{name}.parquet`` (or ``lake/{layer}/{name}/{key}.parquet`` partitions)."""

    layer: str
    name: str
    description: str = ""
    key: tuple[str, ...] = ()  # the columns that identify a row, where the table has such a key

    @property
    def view(self) -> str:
        """The table's DuckDB view in the warehouse (``mlplatform sql``)."""
        return f"{self.layer}_{self.name}"

    @property
    def asset_key(self) -> str:
        """The asset key of a table the lineage graph declares on its own (the view name)."""
        return self.view


def layer_and_name(table: "Table | str", name: str | None = None) -> tuple[str, str]:
    """``(layer, name)`` of a :class:`Table`, or of a layer and name given apart."""
    if isinstance(table, Table):
        if name is not None:
            raise TypeError(f"table {table.layer}/{table.name} given together with a name ({name!r})")
        return table.layer, table.name
    if name is None:
        raise TypeError(f"layer {table!r} given without a table name")
    return table, name


def with_rest(table: "Table | str", rest: tuple) -> tuple[str, str, tuple]:
    """``(layer, name, remaining arguments)`` of a call given a :class:`Table` or a layer and name first."""
    if isinstance(table, Table):
        return table.layer, table.name, rest
    if not rest:
        raise TypeError(f"layer {table!r} given without a table name")
    return table, rest[0], rest[1:]


# Tables named after a source, the entity, a candidate model or a profiled view.

def raw(source: str) -> Table:
    return Table("raw", source, f"the source '{source}' as ingested (monthly partitions for a monthly source)")


def validated(source: str) -> Table:
    return Table("validated", source, f"rows of '{source}' that passed the brief's validation rules")


def quarantine(source: str) -> Table:
    return Table("quarantine", source, f"rows of '{source}' that failed validation, with the failed rule")


def quality(source: str) -> Table:
    return Table("quality", source, f"the quality dimensions scored on '{source}'")


def features(entity: str) -> Table:
    return Table("features", feature_view_name(entity), f"the daily features of each {entity}")


def candidate(name: str) -> Table:
    return Table("candidates", name, f"the training summary of candidate model '{name}' (run id, dataset version)")


def profile(view: str) -> Table:
    return Table("profiles", view, f"profile summary of the {view} feature rows")


def batch_profile(source: str) -> Table:
    return Table("profiles", f"batch_{source}", f"profile summary of each monthly batch of '{source}'")


# Quality reports.
DATA_QUALITY = Table("reports", "data_quality", "the 18/30 data-quality score per source")
DATA_QUALITY_OVERALL = Table("reports", "data_quality_overall", "points per quality dimension over all sources")
DATA_QUALITY_RELEVANCE = Table("reports", "data_quality_relevance", "relevance of each input to the label")

# Features.
FEATURE_CATALOGUE = Table("features", "catalogue", "one row per feature: its type, source, description, caveats and "
                          "whether it is a protected attribute", ("name",))

# Training.
TRAINING_SET = Table("training", "training_set", "labelled rows joined point-in-time with their features")
ROW_COUNTS = Table("training", "row_counts", "rows kept and lost between the label source and the training set")

# Evaluation (written by the evaluation report).
CHALLENGER = Table("evaluation", "challenger", "the candidate chosen on validation, with the selection",
                   ("candidate",))
METRICS = Table("evaluation", "metrics", "hold-out metrics with bootstrap intervals per candidate",
                ("candidate", "metric"))
BASELINE_COMPARISON = Table("evaluation", "baseline_comparison", "paired comparisons with every baseline")
SLICES = Table("evaluation", "slices", "the challenger's metrics per slice of the brief's slice_by")
KILL_CRITERIA = Table("evaluation", "kill_criteria", "each kill criterion: measured value and whether it passed")
EDGE_CASES = Table("evaluation", "edge_cases", "the challenger's scores on probed edge-case rows")
PREDICTIONS = Table("evaluation", "predictions", "the challenger's hold-out predictions")
FAIRNESS = Table("evaluation", "fairness", "the fairness gate's verdict per protected attribute", ("attribute",))
FAIRNESS_GROUPS = Table("evaluation", "fairness_groups", "selection rate, TPR and calibration per protected group")
FAIRNESS_CANDIDATES = Table("evaluation", "fairness_candidates", "the fairness of every candidate on the hold-out")
CROSS_VALIDATION = Table("evaluation", "cross_validation", "cross-validation folds on small data")
CALIBRATION = Table("evaluation", "calibration", "calibration summary of the challenger")
WORST_PREDICTIONS = Table("evaluation", "worst_predictions", "the 50 worst hold-out predictions")
SKEW = Table("evaluation", "skew", "offline versus online feature values per sampled entity")
GOLDEN = Table("evaluation", "golden", "the golden test set: labelled rows never trained, validated or tuned on")
GOLDEN_METRICS = Table("evaluation", "golden_metrics", "the challenger's metrics on the golden set")
FEATURE_IMPORTANCE = Table("evaluation", "feature_importance", "feature importance per training run (partitions)",
                           ("run_id", "feature"))

# Registry and serving.
REGISTERED_CHALLENGER = Table("registry", "challenger", "the registered challenger: version and run id")
PROMOTION = Table("registry", "promotion", "the promotion gate's decision and its reasons")
ROLLOUT = Table("registry", "rollout", "the rollout state of the champion")
BATCH_PREDICTIONS = Table("serving", "batch_predictions", "the champion's scores for every entity's latest row")

# Monitoring.
CURRENT_PROFILE = profile("current")
PREDICTION_PROFILES = Table("profiles", "predictions", "profile summary of the champion's predictions per day")
DRIFT = Table("monitoring", "drift", "feature drift (PSI, KS) between training and the monitored period")
DRIFT_BY_MONTH = Table("monitoring", "drift_by_month", "feature drift per month of the monitored period")
PERFORMANCE = Table("monitoring", "performance", "the champion's metrics on labelled monitored rows")
PREDICTION_DRIFT = Table("monitoring", "prediction_drift", "drift of the champion's score distribution per day")
SERVING_WINDOWS = Table("monitoring", "serving_windows", "serving traffic, latency and errors per window")
SERVING_HOURLY = Table("monitoring", "serving_hourly", "serving traffic per hour")
SERVING_ALERTS = Table("monitoring", "serving_alerts", "alerts raised on serving traffic")
LABEL_DRIFT = Table("monitoring", "label_drift", "drift of served labels against the training labels")

# Reporting and governance.
BIAS_CHECKLIST = Table("reporting", "bias_checklist", "the model card's bias checklist")
COST_STEPS = Table("reports", "cost_steps", "duration and cost of each step of the latest run")
COST_HISTORY = Table("reports", "cost_history", "cost of every run so far")
ML_SYSTEM_SCORE = Table("reports", "ml_system_score", "the ML-system score per dimension")

# Question answering over the reports.
RAG_DOCUMENTS = Table("rag", "documents", "documents indexed for question answering")
RAG_SEGMENTS = Table("rag", "segments", "the documents' segments before chunking")
RAG_CHUNKS = Table("rag", "chunks", "chunks embedded in the index")
RAG_QUERIES = Table("rag", "queries", "evaluation queries with their relevant chunks")
RAG_RETRIEVAL_METRICS = Table("rag", "retrieval_metrics", "retrieval metrics per retriever")
RAG_ANSWERS = Table("rag", "answers", "generated answers to the evaluation queries")
RAG_ANSWER_METRICS = Table("rag", "answer_metrics", "answer-quality metrics")
RAG_ANSWER_EVAL_RUN = Table("rag", "answer_eval_run", "the MLflow run of the latest answer evaluation")
RAG_PROMOTION_HISTORY = Table("rag", "promotion_history", "the question-answering gate's promotions so far")
