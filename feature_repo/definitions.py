"""Feast objects of the demo brief, from the same code the platform uses (one definition of the features).

Feast imports every ``.py`` file in this folder; keep this the only one.
"""

import os

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.feature_catalogue import feature_catalogue
from mlplatform.core.feature_store import feast_objects, feature_view_name
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

# The feature catalogue types every field, so `feast apply` works before the first feature run.
customer, customer_daily_features_source, customer_daily_features, churn_demo_model_v1 = feast_objects(
    workspace.table("features", feature_view_name(brief.entity)),
    brief.features,
    catalogue=feature_catalogue(brief),
    project=brief.name,
    entity=brief.entity,
    entity_key=brief.entity_key,
    owner=brief.owner,
)
