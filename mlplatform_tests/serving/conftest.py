"""Fixtures of the serving tests: the demo graph's workspace, its Feast online store and ids it knows."""

import feast
import polars as pl
import pytest

from mlplatform.core.feature_store import feast_config
from mlplatform.settings import Workspace
from mlplatform_tests.serving.helpers import KEY, features_of


@pytest.fixture(scope="module")
def ws(demo_run, demo_settings) -> Workspace:
    assert demo_run.outcome.ok, "\n".join(demo_run.lines)
    return Workspace(demo_settings.data_dir, "churn_demo")


@pytest.fixture(scope="module")
def store(ws) -> feast.FeatureStore:
    return feast.FeatureStore(config=feast_config(ws.feast_dir, "churn_demo"))


@pytest.fixture(scope="module")
def known_ids(store) -> list[int]:
    """Ids the online store has features for, with both predicted classes among them."""
    frame = features_of(store, list(range(1, 41)))
    return frame.filter(pl.col("customer_login_30d_count").is_not_null())[KEY].to_list()
