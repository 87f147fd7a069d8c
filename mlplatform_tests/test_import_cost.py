"""Loading the code location, and the CLI's help, must not import the heavy ML libraries.

Every run Dagster launches (from the UI, a sensor, a schedule, each step of the multiprocess executor) imports
``mlplatform.definitions`` before doing any work, so a library imported there is paid by every run whether it
uses it or not. Feast, torch, MLflow, whylogs, LightGBM, Optuna, scikit-learn, fairlearn and uvicorn are
imported by the functions that use them. The check is on ``sys.modules`` of a fresh interpreter, not on time:
it is deterministic and names the module that pulled a library in. (benchmarks/bench_import.py measures the time.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("feast", "torch", "mlflow", "whylogs", "lightgbm", "optuna", "sklearn", "fairlearn", "uvicorn")

# Runs in a fresh interpreter: for each heavy library still loaded, the chain of mlplatform modules whose
# import brought it in (found by re-running the import under an import hook that records the importer).
_PROBE = r"""
import builtins, json, sys

HEAVY = set(json.loads(sys.argv[1]))
first_importer = {}
stack = []
real_import = builtins.__import__


def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "?")
    top = name.split(".")[0] if level == 0 else ""
    if top in HEAVY and top not in first_importer and top not in sys.modules:
        first_importer[top] = [m for m in stack if m.startswith("mlplatform")] + [importer]
    stack.append(importer)
    try:
        return real_import(name, globals, locals, fromlist, level)
    finally:
        stack.pop()
        for lib in HEAVY - first_importer.keys():  # loaded by importlib below this import
            if lib in sys.modules:
                first_importer[lib] = [m for m in stack if m.startswith("mlplatform")] + [importer, name]


builtins.__import__ = recording_import
{action}
builtins.__import__ = real_import
loaded = sorted(m for m in HEAVY if m in sys.modules)
print("RESULT " + json.dumps({m: first_importer.get(m, ["?"]) for m in loaded}))
"""

IMPORT_DEFINITIONS = "import mlplatform.definitions"
CLI_HELP = """
from mlplatform.cli import app
try:
    app(["--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""


def _heavy_modules_loaded(action: str, tmp_path: Path) -> dict[str, list[str]]:
    """Runs ``action`` in a fresh interpreter; the heavy libraries it loaded, each with its importers."""
    env = {**os.environ, "MLPLATFORM_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path)}
    env.pop("MLPLATFORM_PROFILE", None)
    env.pop("MLPLATFORM_BRIEF", None)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # PYTHONPATH: the package under test, which `python -c` would otherwise look for in the (empty) cwd first
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _PROBE.replace("{action}", action), json.dumps(HEAVY)],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Loading writes nothing: no data directory, no ./mlruns or Feast repo in the working directory.
    assert not (tmp_path / "data").exists()
    assert not list(cwd.iterdir())
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _explain(loaded: dict[str, list[str]]) -> str:
    return "; ".join(f"{lib} (imported via {' -> '.join(chain)})" for lib, chain in loaded.items())


@pytest.mark.parametrize("action", [IMPORT_DEFINITIONS, CLI_HELP], ids=["import definitions", "mlplatform --help"])
def test_no_heavy_library_is_imported(action, tmp_path):
    loaded = _heavy_modules_loaded(action, tmp_path)
    assert not loaded, (f"loading imports heavy libraries: {_explain(loaded)}; import them inside the function "
                        "that uses them (type-only imports under TYPE_CHECKING)")


def test_the_probe_sees_a_heavy_import(tmp_path):
    """The check can fail: a module that imports LightGBM at the top is reported, with the importing module."""
    loaded = _heavy_modules_loaded("import mlplatform.core.tuning", tmp_path)
    assert "lightgbm" in loaded and "optuna" in loaded
    assert "mlplatform.core.tuning" in loaded["optuna"]


def test_the_code_location_still_defines_every_stage(tmp_path):
    """Deferring the imports loses nothing: the code location, loaded as Dagster's tools load it, resolves its jobs
    in a fresh process."""
    env = {**os.environ, "MLPLATFORM_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path)}
    env.pop("MLPLATFORM_PROFILE", None)
    env.pop("MLPLATFORM_BRIEF", None)
    code = ("from mlplatform.definitions import defs\n"
            "defs = defs()\n"
            "graph = defs.resolve_asset_graph()\n"
            "print(len(graph.get_all_asset_keys()), len(defs.resolve_all_job_defs()))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assets, jobs = map(int, done.stdout.split())
    assert assets > 20 and jobs >= 1
