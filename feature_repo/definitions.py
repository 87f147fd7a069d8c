"""Feast objects of the demo brief, from the same code the platform uses (one definition of the features).

Feast imports every ``.py`` file in this folder; keep this the only one.
"""

import os

import polars as pl

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.feature_store import feast_objects, feature_view_name
from mlplatform.core.features import build_features
from mlplatform.schemas import POLARS_DTYPES
from mlplatform.settings import Settings, Workspace

if not os.environ.get("MLPLATFORM_DATA_DIR"):
    raise SystemExit(
        "MLPLATFORM_DATA_DIR is not set; feature_store.yaml needs it. Run e.g. "
        "`export MLPLATFORM_DATA_DIR=$PWD/../data` first."
    )

brief = load_brief(DEMO_BRIEF)
workspace = Workspace(Settings.from_env().data_dir, brief.name)
# SQLite creates the registry file but not its folder.
workspace.feast_dir.mkdir(parents=True, exist_ok=True)


def _empty(source: str) -> pl.DataFrame:
    columns = brief.sources[source].columns
    return pl.DataFrame(schema={name: POLARS_DTYPES[spec.dtype] for name, spec in columns.items()})


# The feature table's schema without reading it: build_features on empty inputs, so `feast apply` also works
# before the first feature run.
_schema = build_features(
    _empty(brief.features.events_source),
    _empty(brief.features.entities_source),
    brief.features,
    entity=brief.entity,
    entity_key=brief.entity_key,
    timestamp=brief.sources[brief.features.events_source].timestamp,
    start=brief.partition_start,
    end=brief.partition_end,
).schema

customer, customer_daily_features_source, customer_daily_features, churn_demo_model_v1 = feast_objects(
    workspace.table("features", feature_view_name(brief.entity)),
    brief.features,
    project=brief.name,
    entity=brief.entity,
    entity_key=brief.entity_key,
    owner=brief.owner,
    feature_table_schema={name: str(dtype) for name, dtype in _schema.items()},
)
