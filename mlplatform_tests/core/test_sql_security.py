"""`mlplatform sql` is read-only for real: each escape below once wrote a lake table, ran INSTALL/LOAD or read
files outside the data directory. Nothing here lets DuckDB try a download: auto-install is proven off by its
setting's value."""

import shutil

import duckdb
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.warehouse import SqlRefused, query
from mlplatform.resources.platform import PlatformResource

METRICS = pl.DataFrame({"metric": ["auc"], "value": [0.81]})


@pytest.fixture
def platform(tmp_path):
    """The demo brief's workspace with one lake table written (and its view registered) the pipeline's way."""
    resource = PlatformResource(data_dir=str(tmp_path / "data"), brief_path=str(DEMO_BRIEF))
    resource.write_table("evaluation", "metrics", METRICS)
    return resource


@pytest.fixture
def outside(tmp_path):
    """A file in the data directory's parent: readable by the user, not part of the lake."""
    path = tmp_path / "secret.csv"
    path.write_text("token\nhunter2\n")
    return path


def _lake_table_bytes(platform):
    return platform.workspace.table("evaluation", "metrics").read_bytes()


def test_the_lake_is_readable_through_views_and_by_absolute_path(platform):
    ws = platform.workspace
    assert query(ws.warehouse, "SELECT * FROM evaluation_metrics").equals(METRICS)
    direct = query(ws.warehouse, f"SELECT * FROM read_parquet('{ws.table('evaluation', 'metrics')}')")
    assert direct.equals(METRICS)
    listed = query(ws.warehouse, f"SELECT count(*) AS n FROM glob('{ws.root / 'lake' / '**'}')")
    assert listed["n"].item() == 1


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("EXPLAIN ANALYZE COPY (SELECT 'x' AS metric) TO '{table}' (FORMAT parquet)",
         "^EXPLAIN of COPY statement is refused"),
        ("EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1) TO '{table}' (FORMAT parquet)",
         "^EXPLAIN of COPY statement is refused"),
        ("EXPLAIN ANALYZE -- a comment\n COPY (SELECT 1) TO '{table}'", "^EXPLAIN of COPY statement is refused"),
        ("COPY (SELECT 1) TO '{table}' (FORMAT parquet)", "^COPY statements are refused"),
        ("EXPLAIN ANALYZE INSTALL httpfs", "^EXPLAIN of INSTALL/LOAD statement is refused"),
        ("EXPLAIN ANALYZE LOAD parquet", "^EXPLAIN of INSTALL/LOAD statement is refused"),
        ("INSTALL httpfs", "^INSTALL/LOAD statements are refused"),
        ("SET enable_external_access = true", "^SET statements are refused"),
        ("EXPLAIN ANALYZE SET enable_external_access = true", "^EXPLAIN of SET statement is refused"),
        ("RESET lock_configuration", "^SET statements are refused"),
        ("ATTACH '{root}/other.duckdb' AS other", "^ATTACH statements are refused"),
        ("PRAGMA database_list", "^PRAGMA statements are refused"),
        ("CALL duckdb_settings()", "^CALL statements are refused"),
        ("EXPORT DATABASE '{root}/export'", "^EXPORT statements are refused"),
        ("CREATE TABLE t AS SELECT 1", "^CREATE statements are refused"),
        ("SELECT 1; SET enable_external_access = true", "^expected one SQL statement, got 2"),
    ],
)
def test_statements_that_write_or_reconfigure_are_refused(platform, sql, message):
    before = _lake_table_bytes(platform)
    statement = sql.format(table=platform.workspace.table("evaluation", "metrics"), root=platform.workspace.root)
    with pytest.raises(SqlRefused, match=message) as refused:
        query(platform.workspace.warehouse, statement)
    assert "Run one SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN of one of those" in str(refused.value) \
        or "run them one at a time" in str(refused.value)
    assert _lake_table_bytes(platform) == before
    assert sorted(p.name for p in platform.workspace.root.iterdir()) == ["lake", "warehouse.duckdb"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv('{outside}')",
        "SELECT * FROM read_parquet('{outside}')",
        "SELECT * FROM read_text('{outside}')",
        "SELECT * FROM glob('/root/*')",
        "SELECT * FROM glob('{data}/*')",
        "SELECT * FROM read_csv('{lake}/../../../secret.csv')",
        "SELECT * FROM read_csv('lake/../../secret.csv')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    ],
)
def test_files_outside_the_lake_cannot_be_read(platform, outside, sql):
    ws = platform.workspace
    statement = sql.format(outside=outside, data=ws.data_dir, lake=ws.root / "lake")
    with pytest.raises(SqlRefused, match=r"Permission Error: .*The SQL tool reads only the lake of this workspace "
                                         rf"\({ws.root / 'lake'}\)"):
        query(ws.warehouse, statement)


def test_the_sandbox_settings_are_on_and_locked(platform):
    settings = query(platform.workspace.warehouse,
                     "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
                     "'autoinstall_known_extensions', 'autoload_known_extensions', 'allow_community_extensions', "
                     "'lock_configuration') ORDER BY name")
    assert dict(settings.rows()) == {"allow_community_extensions": "false", "autoinstall_known_extensions": "false",
                                     "autoload_known_extensions": "false", "enable_external_access": "false",
                                     "lock_configuration": "true"}


def test_a_write_that_reaches_duckdb_still_fails_on_the_sandbox(platform):
    """Past the statement check (called directly here), the locked connection itself refuses."""
    from mlplatform.core.warehouse import _sandboxed

    table = platform.workspace.table("evaluation", "metrics")
    before = table.read_bytes()
    with _sandboxed(platform.workspace.warehouse) as con:
        with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            con.execute(f"ATTACH '{platform.workspace.root / 'other.duckdb'}' AS other")
    assert table.read_bytes() == before
    assert not (platform.workspace.root / "other.duckdb").exists()


def test_a_copied_data_directory_queries_its_own_lake(platform, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(platform.data_dir, copy)
    copied = PlatformResource(data_dir=str(copy), brief_path=str(DEMO_BRIEF)).workspace
    pl.DataFrame({"metric": ["auc"], "value": [0.5]}).write_parquet(copied.table("evaluation", "metrics"))
    platform.workspace.table("evaluation", "metrics").unlink()  # the original is gone

    assert query(copied.warehouse, "SELECT value FROM evaluation_metrics")["value"].to_list() == [0.5]


def test_the_cli_names_the_refusal_and_leaves_the_lake_alone(platform):
    from typer.testing import CliRunner

    from mlplatform.cli import app

    table = platform.workspace.table("evaluation", "metrics")
    before = table.read_bytes()
    escape = f"EXPLAIN ANALYZE COPY (SELECT 'x' AS metric) TO '{table}' (FORMAT parquet)"
    result = CliRunner().invoke(app, ["sql", escape, "--data-dir", platform.data_dir])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: EXPLAIN of COPY statement is refused: EXPLAIN ANALYZE runs the statement")
    outside = CliRunner().invoke(app, ["sql", "SELECT * FROM read_csv('/etc/passwd')", "--data-dir", platform.data_dir])
    assert outside.exit_code != 0 and "The SQL tool reads only the lake of this workspace" in outside.stderr
    assert table.read_bytes() == before
    ok = CliRunner().invoke(app, ["sql", "SELECT value FROM evaluation_metrics", "--data-dir", platform.data_dir])
    assert ok.exit_code == 0 and "0.81" in ok.stdout
