"""Shared fixtures: a small demo dataset and one in-process run of the whole graph, made once per session."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.settings import Settings

DEMO_EVENTS = 300_000  # the default scale: the fairness gate needs 50+ hold-out rows per age band


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
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return DemoRun(outcome, lines, sorted(p for p in workdir.rglob("*") if p.is_file()))
