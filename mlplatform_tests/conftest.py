"""Shared fixtures: a small demo dataset and one in-process run of the whole graph, made once per session."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# Before any test module imports Feast: Feast without typeguard's rewrites, as the platform's own processes load it
# (mlplatform.core.feast_import). A test module importing feast first made each worker pay them at collection.
import mlplatform.core.feast_import  # noqa: F401
from mlplatform.brief import DEMO_BRIEF
from mlplatform.settings import Settings

DEMO_EVENTS = 300_000  # the default scale: the fairness gate needs 50+ hold-out rows per age band


def _xdist_group(item: pytest.Item) -> str:
    """The worker group of a test under `make test` (`pytest -n 2 --dist loadgroup`): the integration tests share
    one worker (they share PostgreSQL and Redis); every test of the session's demo (`demo_settings`, `demo_run`)
    shares one, so the whole graph runs once; any other test stays with its file, so module fixtures are built once."""
    if item.get_closest_marker("integration"):
        return "integration"
    if "demo_settings" in getattr(item, "fixturenames", ()):
        return "demo"
    return item.nodeid.split("::")[0]


# The groups that take minutes, longest first (measured: docs/testing.md). xdist hands groups out in collection
# order (`--no-loadscope-reorder`), so the two longest start at once, one on each worker, the next ones follow as
# a worker frees up and the short files fill in behind them: the workers finish close together.
LONG_GROUPS = (
    "mlplatform_tests/integration/test_living_loop.py",  # the daemon's loop over four replayed months
    "demo",  # the whole graph on 300,000 events, then its 70-odd readers and two retraining runs
    "integration",  # the production profile's whole graph on PostgreSQL and Redis, the compose stack
    "mlplatform_tests/test_own_data.py",  # three graphs on other data sets, in one shared data directory
    "mlplatform_tests/test_real_tables.py",  # seven graphs on a DuckDB table and real public tables
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, suffix each test id with its group, which is how xdist's scheduler reads groups,
    and put the longest groups first (:data:`LONG_GROUPS`; with `--no-loadscope-reorder` the workers take groups
    in this order). pytest-xdist 3.8 sets the suffix for `xdist_group` marks through `item._nodeid`, which pytest
    9.2 no longer reads (the id lives in `item._id`), so it is set here."""
    if not getattr(config.option, "loadgroup", False):
        return
    groups = {item: _xdist_group(item) for item in items}
    rank = {group: index for index, group in enumerate(LONG_GROUPS)}
    items.sort(key=lambda item: rank.get(groups[item], len(LONG_GROUPS)))  # stable: collection order otherwise
    for item in items:
        if "@" not in item.nodeid.rpartition("]")[2]:
            item._id = type(item._id).parse(f"{item.nodeid}@{groups[item]}")


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory) -> Settings:
    """Settings pointing at a fresh data directory holding a small generated demo."""
    from mlplatform.core.demo_data import generate_demo

    data_dir = tmp_path_factory.mktemp("data")
    generate_demo(data_dir / "inputs" / "churn_demo", n_events=DEMO_EVENTS, seed=7)
    return Settings(data_dir=data_dir, brief_path=DEMO_BRIEF)


@dataclass
class DemoRun:
    outcome: object
    lines: list[str]
    stray_files: list[Path]


@pytest.fixture(scope="session")
def demo_run(demo_settings, tmp_path_factory) -> DemoRun:
    """The whole graph materialised once, in-process, from an empty working directory (to catch stray
    writes), on an ephemeral Dagster instance. The settings are passed down; the environment is not touched."""
    import dagster as dg

    from mlplatform.runner import run_graph

    workdir = tmp_path_factory.mktemp("cwd")
    cwd = Path.cwd()
    os.chdir(workdir)
    lines: list[str] = []
    try:
        with dg.instance_for_test() as instance:
            outcome = run_graph(demo_settings, instance=instance, progress=lines.append)
    finally:
        os.chdir(cwd)
    return DemoRun(outcome, lines, sorted(p for p in workdir.rglob("*") if p.is_file()))
