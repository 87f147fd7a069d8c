"""Every asset of the lineage graph by name, spelled once.

Asset definitions take their key from these (``@dg.asset(name=asset_names.TRAINING_SET, ...)``) and every
reference to an asset — ``deps=``, a check's ``asset=``, ``dg.AssetKey(...)``, a job's or sensor's selection —
names the same constant, so renaming an asset is one edit here and a misspelt name is an ``AttributeError`` when
the module is imported, not a dependency edge that silently goes missing. Assets named after a source (the raw,
validated and quarantined tables of each) are built by the functions below. The evaluation report's lake-table
assets are keyed by their table's view name (:attr:`mlplatform.core.tables.Table.asset_key`); the candidate
models' assets are the model families' (:mod:`mlplatform.core.model_families`), which take their names from here.

Pure data: importing this module imports nothing.
"""

from typing import Final

# Problem and ingestion.
PROBLEM_BRIEF: Final = "problem_brief"


def raw(source: str) -> str:
    """The ingested source ``source`` (monthly partitions for a time-partitioned source)."""
    return f"raw_{source}"


# Quality.
def validated(source: str) -> str:
    """The rows of ``source`` that passed validation."""
    return f"validated_{source}"


def quarantined(source: str) -> str:
    """The rows of ``source`` that failed validation."""
    return f"quarantined_{source}"


DATA_QUALITY_REPORT: Final = "data_quality_report"

# Features and the feature store.
FEATURE_CATALOGUE: Final = "feature_catalogue"
FEATURES_DAILY: Final = "features_daily"
FEATURE_STORE: Final = "feature_store"
ONLINE_FEATURES: Final = "online_features"

# Training: the training set, the baselines and the candidate models (one per model family).
TRAINING_SET: Final = "training_set"
BASELINE_MODEL: Final = "baseline_model"
RULES_BASELINE: Final = "rules_baseline"
LGBM_MODEL: Final = "lgbm_model"
TORCH_MODEL: Final = "torch_model"
LGBM_REWEIGHED_MODEL: Final = "lgbm_reweighed_model"
LGBM_THRESHOLD_MODEL: Final = "lgbm_threshold_model"

# Evaluation (its lake tables are assets too: tables.<TABLE>.asset_key).
EVALUATION_REPORT: Final = "evaluation_report"

# Registry and serving.
MODEL_REGISTRY: Final = "model_registry"
CHAMPION_MODEL: Final = "champion_model"
SERVING_ROLLOUT: Final = "serving_rollout"
AB_TEST_REPORT: Final = "ab_test_report"
BATCH_PREDICTIONS: Final = "batch_predictions"

# Monitoring.
BATCH_PROFILES: Final = "batch_profiles"  # partitioned like the raw batches: it runs with each batch's ingestion
WHYLOGS_PROFILES: Final = "whylogs_profiles"
DRIFT_REPORT: Final = "drift_report"
PERFORMANCE_REPORT: Final = "performance_report"
PREDICTION_PROFILES: Final = "prediction_profiles"
SERVING_MONITOR: Final = "serving_monitor"

# Reporting and governance.
MODEL_CARD: Final = "model_card"
COST_REPORT: Final = "cost_report"
ML_SYSTEM_SCORE: Final = "ml_system_score"

# Question answering over the reports.
RAG_REPORT_DOCUMENTS: Final = "rag_report_documents"
RAG_DOCUMENTS: Final = "rag_documents"
RAG_CHUNKS: Final = "rag_chunks"
RAG_INDEX: Final = "rag_index"
RAG_QUERIES: Final = "rag_queries"
RAG_RERANKER: Final = "rag_reranker"
RAG_RETRIEVAL_EVAL: Final = "rag_retrieval_eval"
RAG_ANSWER_EVAL: Final = "rag_answer_eval"
RAG_REPORT: Final = "rag_report"
RAG_SYSTEM_CARD: Final = "rag_system_card"
