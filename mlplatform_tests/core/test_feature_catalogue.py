"""The feature catalogue against real feature builds: every feature's type, nullability and origin as the brief
defines it, for event features and a plain table (the `mlplatform init` path) alike."""

from datetime import date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlplatform.brief import DEMO_BRIEF, Brief, DailyLag, Interaction, RollingAggregate, load_brief
from mlplatform.core import tables
from mlplatform.core.brief_draft import draft_brief, read_dataset
from mlplatform.core.datasets import model_features
from mlplatform.core.demo_data import generate_demo
from mlplatform.core.feature_catalogue import FeatureCatalogue, FeatureTypeError, check_schema, feature_catalogue
from mlplatform.core.features import build_features
from mlplatform.core.ingestion import add_derived_columns, ingest
from mlplatform.core.table_features import build_table_features
from mlplatform.core.validation import validate_table
from mlplatform.defs import features as defs_features
from mlplatform.resources.platform import PlatformResource

AGGS = ["sum", "mean", "min", "max", "std", "count"]
# A ratio whose name ends in _count: a float, whatever its name says.
WEEKLY_SHARE = Interaction(left="login_7d_count", right="login_30d_count", kind="ratio", name="weekly_login_count")


def every_definition(brief: Brief) -> Brief:
    """The demo brief with every kind of event feature: each aggregation over windows and lags, cyclical
    encodings, and interactions (one over an attribute, one named like a count)."""
    features = brief.features.model_copy(update={
        "rolling": [RollingAggregate(column="session_minutes", aggregations=AGGS, windows_days=[7, 30]),
                    RollingAggregate(column="amount", aggregations=["sum"], windows_days=[30])],
        "lags": [DailyLag(column="session_minutes", aggregations=AGGS, lags_days=[1, 7])],
        "cyclical": ["day_of_week", "month"],
        "interactions": [*brief.features.interactions, WEEKLY_SHARE]})
    return brief.model_copy(update={"features": features})


def assert_table_matches(catalogue: FeatureCatalogue, table: pl.DataFrame) -> None:
    """Each feature has the catalogue's type, and a feature the catalogue calls never null has no null."""
    check_schema(catalogue, table.schema)
    assert table.columns[3:] == catalogue.names, "the feature table's columns are the catalogue's, in order"
    never_null = [f.name for f in catalogue.features if not f.nullable]
    assert table.select(never_null).null_count().row(0) == (0,) * len(never_null)


def validated(brief: Brief, name: str, files: list[Path], fmt: str) -> pl.DataFrame:
    source = brief.sources[name]
    raw = add_derived_columns(ingest(files, fmt, source.file_columns), source)
    return validate_table(raw, name, source, as_of=datetime(2026, 1, 1)).valid


def test_the_feature_table_built_from_demo_data_has_the_catalogues_types(tmp_path):
    generate_demo(tmp_path, n_events=2000, seed=1)
    brief = every_definition(load_brief(DEMO_BRIEF))
    events = validated(brief, "events", sorted((tmp_path / "events").glob("*.parquet")), "parquet")
    customers = validated(brief, "customers", [tmp_path / "customers.csv"], "csv")
    table = build_features(events, customers, brief.features, entity="customer", entity_key="customer_id",
                           timestamp="event_timestamp", start=date(2025, 3, 1), end=date(2025, 5, 1))
    catalogue = feature_catalogue(brief)
    assert table.height > 5_000 and {f.kind for f in catalogue.features} == {
        "rolling", "count", "days_since", "lag", "attribute", "tenure", "cyclical", "interaction"}
    assert_table_matches(catalogue, table)
    nullable = [f.name for f in catalogue.features if f.nullable]
    assert all(table[name].null_count() > 0 for name in nullable if "mean" in name or "days_since" in name), (
        "the windows and recencies the catalogue calls nullable do hold nulls on real data")
    assert table.schema["customer_weekly_login_count"] == pl.Float64
    inputs = table.select(model_features(brief))  # the columns training takes
    assert "customer_age_band" not in inputs.columns and inputs.width == len(catalogue.names) - 1


def test_a_feature_whose_type_differs_from_the_catalogue_is_named():
    catalogue = feature_catalogue(load_brief(DEMO_BRIEF))
    schema = {f.name: f.polars_dtype for f in catalogue.features}
    check_schema(catalogue, schema)
    wrong = schema | {"customer_login_7d_count": pl.Float64()}
    wrong.pop("customer_plan")
    with pytest.raises(FeatureTypeError, match="customer_login_7d_count is Float64, the catalogue says int .Int64.; "
                                               "customer_plan is missing"):
        check_schema(catalogue, wrong)


def test_the_catalogue_says_what_made_each_feature_before_any_data_exists():
    catalogue = feature_catalogue(load_brief(DEMO_BRIEF))
    fee, logins, band = (catalogue[n] for n in ("customer_monthly_fee", "customer_login_7d_count",
                                               "customer_age_band"))
    assert (fee.dtype, fee.kind, fee.source_table, fee.source_column) == ("float", "attribute", "customers",
                                                                          "monthly_fee")
    assert (logins.dtype, logins.source_column, logins.aggregation, logins.nullable) == (
        "int", "event_type", "count of login", False)
    assert logins.description.startswith("Number of events with event_type = 'login' in the 7 days")
    assert band.protected and "customer_age_band" not in catalogue.model_inputs
    assert catalogue.model_inputs == [n for n in catalogue.names if n != "customer_age_band"]
    difference = catalogue["customer_amount_30d_sum_minus_monthly_fee_difference"]
    assert (difference.source_table, difference.nullable) == ("events, customers", False)
    assert catalogue["customer_days_since_login"].caveats.startswith("Null until the first such event")
    frame = catalogue.frame()
    assert frame.columns == ["name", "dtype", "kind", "source_table", "source_column", "aggregation", "description",
                             "caveats", "nullable", "protected"]
    assert frame.height == len(catalogue.names) and frame.schema["protected"] == pl.Boolean
    with pytest.raises(KeyError, match="'customer_income' is not a feature of the brief"):
        catalogue["customer_income"]


def test_a_drafted_plain_table_brief_types_its_features_as_declared(tmp_path):
    data = tmp_path / "visits.csv"
    pl.DataFrame({"visit_count": [1.5, 2.0, None, 4.25] * 5, "size": [3, 1, 2, 5] * 5,
                  "member": [True, False, True, True] * 5, "colour": ["red", "blue", "red", "green"] * 5,
                  "bought": [1, 0, 0, 1] * 5}).write_csv(data)
    path = tmp_path / "brief.yaml"
    path.write_text(draft_brief(str(data), "bought", brief_dir=tmp_path, today=date(2026, 1, 5)).text)
    brief = load_brief(path)
    catalogue = feature_catalogue(brief)
    entity = brief.entity
    assert {f.name: f.dtype for f in catalogue.features} == {
        f"{entity}_visit_count": "float", f"{entity}_size": "int", f"{entity}_member": "bool",
        f"{entity}_colour": "str"}
    assert catalogue[f"{entity}_visit_count"].nullable and not catalogue[f"{entity}_size"].nullable
    source = brief.features.source
    table = validated(brief, source, [data], read_dataset(str(data))[1])
    features = build_table_features(table, brief.features, entity=entity, entity_key=brief.entity_key,
                                    timestamp=brief.sources[source].timestamp)
    assert_table_matches(catalogue, features)


def test_the_feature_catalogue_asset_writes_the_catalogue_and_shows_it(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    result = dg.materialize([defs_features.feature_catalogue_table], resources={"platform": platform})
    (materialization,) = result.asset_materializations_for_node("feature_catalogue")
    expected = feature_catalogue(platform.brief).frame()
    assert_frame_equal(platform.read_table(tables.FEATURE_CATALOGUE), expected)
    shown = materialization.metadata["catalogue"].value
    assert shown.startswith("| name | dtype | source_table |") and shown.count("\n") == expected.height + 1
    assert materialization.metadata["model_inputs"].value == expected.height - 1  # all but customer_age_band
