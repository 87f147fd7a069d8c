import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlplatform.core.warehouse import lake_view_sql, query, set_workspace, write_result

TABLE = pl.DataFrame({"customer_id": [1, 2, 3], "score": [0.5, None, 0.25], "plan": ["a", "b", "a"]})


@pytest.fixture
def warehouse(tmp_path):
    """A warehouse like the pipeline's: a DuckDB file holding a view over a lake Parquet table beside it."""
    (tmp_path / "lake" / "features").mkdir(parents=True)
    TABLE.write_parquet(tmp_path / "lake" / "features" / "scores.parquet")
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        set_workspace(con, path)
        con.execute(lake_view_sql("features_scores", "lake/features/scores.parquet"))
    return path


def test_reading_statements_over_a_view(warehouse):
    assert_frame_equal(query(warehouse, "SELECT * FROM features_scores ORDER BY customer_id"), TABLE)
    out = query(
        warehouse, "WITH s AS (FROM features_scores) SELECT plan, count(*) AS n FROM s GROUP BY plan ORDER BY plan"
    )
    assert out.rows() == [("a", 2), ("b", 1)]
    assert query(warehouse, "SELECT * FROM features_scores", limit=2).height == 2
    assert query(warehouse, "DESCRIBE features_scores")["column_name"].to_list() == TABLE.columns
    assert query(warehouse, "SHOW TABLES")["name"].to_list() == ["features_scores"]
    assert query(warehouse, "EXPLAIN SELECT * FROM features_scores").height >= 1


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO features_scores VALUES (4, 1.0, 'c')", "INSERT"),
        ("CREATE TABLE copy AS SELECT * FROM features_scores", "CREATE"),
        ("DROP VIEW features_scores", "DROP"),
        ("COPY features_scores TO 'out.csv'", "COPY"),
        ("ATTACH 'other.duckdb' AS other", "ATTACH"),
        ("-- looks harmless\nUPDATE features_scores SET score = 0", "UPDATE"),
    ],
)
def test_writes_are_refused_with_their_statement_type(warehouse, sql, kind):
    with pytest.raises(ValueError, match=rf"^{kind} statements are refused: the warehouse is read-only"):
        query(warehouse, sql)
    assert query(warehouse, "SELECT count(*) AS n FROM features_scores")["n"].item() == 3
    assert sorted(p.name for p in warehouse.parent.iterdir()) == ["lake", "warehouse.duckdb"]


def test_multiple_statements_are_refused(warehouse):
    with pytest.raises(ValueError, match="expected one SQL statement, got 2"):
        query(warehouse, "SELECT 1; DROP VIEW features_scores")
    assert query(warehouse, "SELECT count(*) AS n FROM features_scores")["n"].item() == 3


def test_explain_analyze_of_a_write_is_refused(warehouse):
    with pytest.raises(ValueError, match="^EXPLAIN of CREATE statement is refused: EXPLAIN ANALYZE runs"):
        query(warehouse, "EXPLAIN ANALYZE CREATE TABLE copy AS SELECT * FROM features_scores")
    assert query(warehouse, "SHOW TABLES")["name"].to_list() == ["features_scores"]


def test_a_missing_warehouse_names_its_path_and_the_fix(tmp_path):
    missing = tmp_path / "shop" / "warehouse.duckdb"
    with pytest.raises(FileNotFoundError, match=r"no warehouse at .*shop/warehouse\.duckdb; run the pipeline first"):
        query(missing, "SELECT 1")
    assert not missing.exists()


def test_write_result_by_suffix(tmp_path):
    assert_frame_equal(pl.read_parquet(write_result(TABLE, tmp_path / "out" / "r.parquet")), TABLE)
    assert_frame_equal(pl.read_csv(write_result(TABLE, tmp_path / "r.CSV")), TABLE)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet, got '\.json'"):
        write_result(TABLE, tmp_path / "r.json")
