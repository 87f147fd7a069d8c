"""The serving app reads the registry and online store it is given (the production profile's PostgreSQL and
Redis), and then creates no local SQLite registry or Feast files under the data directory."""

import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.feature_store import feast_config
from mlplatform.core.tracking import get_alias_version
from mlplatform.serving.app import _without_password
from mlplatform.settings import Settings, Workspace
from mlplatform_tests.serving.helpers import MODEL, copy_namespace


def test_the_cost_reports_predict_timing_serves_the_runs_stores_and_creates_none_locally(demo_settings, ws,
                                                                                          known_ids, tmp_path):
    """As the cost report times /predict in the production profile: the registry and the online store live
    elsewhere (here copies outside the data directory stand for PostgreSQL and Redis). The champion answers
    from them, and the data directory gets no MLflow or Feast store of its own."""
    from mlplatform.serving.timing import time_predict_endpoint

    stores = Workspace(copy_namespace(demo_settings, tmp_path / "stores", ["mlflow", "feast"]).data_dir, "churn_demo")
    champion = get_alias_version(stores.mlflow_uri, MODEL, "champion")
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, brief_path=DEMO_BRIEF)

    timing = time_predict_endpoint(settings, known_ids, stores.mlflow_uri, feast_config(stores.feast_dir, "churn_demo"))

    assert timing is not None and timing.rows == len(known_ids)
    assert timing.model == f"{MODEL} version {champion}", timing.describe()  # not the rules fallback
    assert "0 ids refused" in timing.describe()  # every id's features came from the given online store
    local = Workspace(data_dir, "churn_demo")
    assert not local.mlflow_dir.exists() and not local.feast_dir.exists()


@pytest.mark.parametrize(("uri", "shown"), [
    ("postgresql+psycopg2://mlflow:s3cret@db:5432/mlflow", "postgresql+psycopg2://mlflow:***@db:5432/mlflow"),
    ("postgresql+psycopg2://postgres@127.0.0.1:5432/mlflow", "postgresql+psycopg2://postgres@127.0.0.1:5432/mlflow"),
    ("sqlite:////data/churn_demo/mlflow/mlflow.db", "sqlite:////data/churn_demo/mlflow/mlflow.db"),
])
def test_a_registry_address_in_messages_never_shows_its_password(uri, shown):
    assert _without_password(uri) == shown
