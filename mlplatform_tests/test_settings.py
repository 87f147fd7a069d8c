"""Settings: every MLPLATFORM_* variable is read once, by Settings.from_env, and a bad value is one clear error
naming the variable and what it allows. Importing the code location builds nothing and reads no variable."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.settings import VARIABLES, Endpoints, ServingSettings, Settings, SettingsError, environment_table

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg2://u:pw@db:5432"


def test_unset_or_empty_variables_take_their_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for environ in ({}, {v.name: "" for v in VARIABLES}):
        settings = Settings.from_env(environ)
        assert settings == Settings(data_dir=tmp_path / "data", brief_path=DEMO_BRIEF.resolve())
        assert settings.serving == ServingSettings()


def test_each_variable_is_read_with_its_type():
    settings = Settings.from_env({
        "MLPLATFORM_DATA_DIR": "/srv/data", "MLPLATFORM_BRIEF": "/srv/brief.yaml",
        "MLPLATFORM_PROFILE": "production", "MLPLATFORM_CHALLENGER_SHARE": "0.25",
        "MLPLATFORM_REGISTRY_POLL_S": "3", "MLPLATFORM_MAX_BODY_BYTES": "65536", "MLPLATFORM_REPLAY_CLOCK": "TRUE",
        "MLPLATFORM_INFERENCE_BACKEND": "frame", "MLPLATFORM_MLFLOW_URI": f"{PG}/mlflow",
        "MLPLATFORM_REDIS": "redis:6379", "MLPLATFORM_FEAST_REGISTRY": f"{PG}/feast"})
    assert settings == Settings(
        data_dir=Path("/srv/data"), brief_path=Path("/srv/brief.yaml"), profile="production",
        serving=ServingSettings(challenger_share=0.25, registry_poll_s=3.0, max_body_bytes=65536,
                                replay_clock=True, inference_backend="frame"),
        endpoints=Endpoints(f"{PG}/mlflow", "redis:6379", f"{PG}/feast"))


@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("MLPLATFORM_PROFILE", "prod", "expected one of local, production"),
    ("MLPLATFORM_CHALLENGER_SHARE", "half", "expected a number >= 0 and <= 1"),
    ("MLPLATFORM_CHALLENGER_SHARE", "1.5", "expected a number >= 0 and <= 1"),
    ("MLPLATFORM_REGISTRY_POLL_S", "soon", "expected a number > 0"),
    ("MLPLATFORM_REGISTRY_POLL_S", "0", "expected a number > 0"),
    ("MLPLATFORM_REGISTRY_POLL_S", "nan", "expected a number > 0"),
    ("MLPLATFORM_MAX_BODY_BYTES", "12", "expected an integer >= 1024"),
    ("MLPLATFORM_MAX_BODY_BYTES", "2.5e6", "expected an integer >= 1024"),
    ("MLPLATFORM_REPLAY_CLOCK", "maybe", "expected 1, true or yes (on), or 0, false or no (off)"),
    ("MLPLATFORM_INFERENCE_BACKEND", "tensorrt", "expected one of auto, frame, onnxruntime, torchscript"),
    ("MLPLATFORM_MLFLOW_URI", "postgresql://h/m", "write postgresql+psycopg2://... rather than postgresql://"),
    ("MLPLATFORM_FEAST_REGISTRY", "postgresql://h/f", "write postgresql+psycopg2://... rather than postgresql://"),
])
def test_a_bad_value_is_one_error_naming_the_variable_and_what_it_allows(variable, value, allowed):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert str(raised.value).startswith(f"{variable}={value!r}: {allowed}")
    assert "\n" not in str(raised.value)


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"MLPLATFORM_PROFILE": "prod", "MLPLATFORM_REGISTRY_POLL_S": "soon"})
    assert str(raised.value).splitlines() == ["MLPLATFORM_PROFILE='prod': expected one of local, production",
                                              "MLPLATFORM_REGISTRY_POLL_S='soon': expected a number > 0"]


def test_the_production_profile_names_the_endpoints_it_lacks():
    with pytest.raises(SettingsError, match="MLPLATFORM_PROFILE=production needs MLPLATFORM_REDIS, "
                                            "MLPLATFORM_FEAST_REGISTRY \\(see deploy/README.md\\)"):
        Settings.from_env({"MLPLATFORM_PROFILE": "production", "MLPLATFORM_MLFLOW_URI": f"{PG}/mlflow"})
    with pytest.raises(SettingsError, match="the production profile needs its endpoints"):
        Settings(data_dir=Path("/srv/data"), brief_path=DEMO_BRIEF, profile="production")


def test_the_docs_table_is_the_settings_table():
    assert environment_table() in (ROOT / "docs" / "architecture.md").read_text()


# Runs in a fresh interpreter: counts reads of MLPLATFORM_* variables and Definitions objects while the code
# location is imported, then loads it as Dagster's tools do.
_PROBE = r"""
import gc, json, os
import dagster as dg

reads = []
real_getitem = type(os.environ).__getitem__

def recording_getitem(self, key):
    if str(key).startswith("MLPLATFORM_"):
        reads.append(key)
    return real_getitem(self, key)

type(os.environ).__getitem__ = recording_getitem
import mlplatform.definitions as location
built, read_at_import = sum(isinstance(o, dg.Definitions) for o in gc.get_objects()), list(reads)
try:
    location.defs()
    error = None
except ValueError as exc:
    error = str(exc)
print("RESULT " + json.dumps({"read_at_import": read_at_import, "read_at_load": reads, "built": built,
                             "error": error}))
"""


def test_importing_the_code_location_builds_nothing_and_reads_no_variable(tmp_path):
    env = {**os.environ, "MLPLATFORM_PROFILE": "prod", "MLPLATFORM_REGISTRY_POLL_S": "soon",
           "MLPLATFORM_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT "))
    assert result["built"] == 0
    assert result["read_at_import"] == []
    # Loading the location is when the environment is read (the probe sees it), and the bad values are reported.
    assert {"MLPLATFORM_PROFILE", "MLPLATFORM_REGISTRY_POLL_S"} <= set(result["read_at_load"])
    assert result["error"] == ("MLPLATFORM_PROFILE='prod': expected one of local, production\n"
                               "MLPLATFORM_REGISTRY_POLL_S='soon': expected a number > 0")
