"""The platform's settings: the one place that reads ``MLPLATFORM_*`` environment variables.

:meth:`Settings.from_env` reads every variable of :data:`VARIABLES` once and checks it; everything else takes
the :class:`Settings` (or the fields it needs) as an argument. Importing this module reads nothing and touches
nothing on disk. The table in docs/architecture.md ("Settings") lists the variables; a test keeps it in step
with :data:`VARIABLES`.
"""

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.tables import Table, layer_and_name, with_rest

Profile = Literal["local", "production"]
PROFILES: tuple[Profile, ...] = ("local", "production")
# How one row is scored: "auto" (the fastest that agrees), "frame" (no row path: every request builds a frame,
# the reference), or one torch runtime (mlplatform.core.torch_model.INFERENCE_BACKENDS, named here so that
# reading the setting does not import torch).
ROW_BACKENDS = ("auto", "frame")
TORCH_BACKENDS = ("onnxruntime", "torchscript", "eager", "onnxruntime-int8", "torch-int8")
MIN_BODY_BYTES = 1024


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use; the message names it and what it allows."""


@dataclass(frozen=True)
class ServingSettings:
    """The serving app's settings that come from the environment (its other limits are
    :class:`mlplatform.serving.app.ServingOptions`')."""

    challenger_share: float | None = None
    registry_poll_s: float = 10.0
    max_body_bytes: int = 2 * 1024 * 1024
    replay_clock: bool = False
    inference_backend: str = "auto"


@dataclass(frozen=True)
class Endpoints:
    """The production profile's connection strings (deploy/README.md)."""

    mlflow_uri: str
    redis: str
    feast_registry: str


@dataclass(frozen=True)
class Settings:
    """Where the platform reads and writes, which brief it runs, and how (the profile and serving settings).

    Raises:
        SettingsError: the production profile without its endpoints.
    """

    data_dir: Path
    brief_path: Path
    profile: Profile = "local"
    serving: ServingSettings = field(default_factory=ServingSettings)
    endpoints: Endpoints | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise SettingsError(f"profile must be one of {', '.join(PROFILES)}, got '{self.profile}'")
        if self.profile == "production" and self.endpoints is None:
            raise SettingsError("the production profile needs its endpoints: build the settings with "
                                "Settings.from_env() under MLPLATFORM_PROFILE=production (see deploy/README.md)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings of ``environ`` (default: this process's environment); an unset or empty variable takes
        its default.

        Raises:
            SettingsError: one line for each variable whose value is not allowed, naming it and what it allows;
                or the production profile with endpoints missing.
        """
        env = os.environ if environ is None else environ
        values, errors = {}, []
        for variable in VARIABLES:
            try:
                values[variable.name] = variable.read(env)
            except ValueError as exc:
                errors.append(f"{variable.name}={env.get(variable.name)!r}: {exc}")
        if errors:
            raise SettingsError("\n".join(errors))
        serving = ServingSettings(challenger_share=values[CHALLENGER_SHARE], registry_poll_s=values[REGISTRY_POLL_S],
                                  max_body_bytes=values[MAX_BODY_BYTES], replay_clock=values[REPLAY_CLOCK],
                                  inference_backend=values[INFERENCE_BACKEND])
        return cls(data_dir=values[DATA_DIR], brief_path=values[BRIEF], profile=values[PROFILE], serving=serving,
                   endpoints=_endpoints(values) if values[PROFILE] == "production" else None)


def _endpoints(values: Mapping[str, Any]) -> Endpoints:
    missing = [name for name in ENDPOINTS if values[name] is None]
    if missing:
        raise SettingsError(f"MLPLATFORM_PROFILE=production needs {', '.join(missing)} (see deploy/README.md); "
                            "unset MLPLATFORM_PROFILE to run locally on files")
    return Endpoints(*(values[name] for name in ENDPOINTS))


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, type and default as the docs show them, what it means, the parser of
    its text (which raises ValueError saying what is allowed), and the text that stands for it when it is unset
    (None: the setting stays None)."""

    name: str
    type: str
    default: str
    description: str
    parse: Callable[[str], Any]
    unset: str | None = None

    def read(self, environ: Mapping[str, str]) -> Any:
        text = environ.get(self.name, "").strip() or self.unset
        return None if text is None else self.parse(text)


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text
    return parse


def _number(low: float, high: float | None = None, low_open: bool = False,
            kind: type = float) -> Callable[[str], Any]:
    """A parser of a number (``kind``) from ``low`` (exclusive when ``low_open``) up to ``high``."""
    allowed = (f"{'an integer' if kind is int else 'a number'} {'>' if low_open else '>='} {low:g}"
               + (f" and <= {high:g}" if high is not None else ""))

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"expected {allowed}") from None
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or (high is not None and value > high):
            raise ValueError(f"expected {allowed}")
        return value
    return parse


def _flag(text: str) -> bool:
    if text.lower() not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError("expected 1, true or yes (on), or 0, false or no (off)")
    return text.lower() in ("1", "true", "yes")


def _path(text: str) -> Path:
    return Path(text).resolve()


def _connection(text: str) -> str:
    # SQLAlchemy 2.1 reads a bare postgresql:// as the psycopg 3 driver, which the platform does not install.
    if text.startswith("postgresql://"):
        raise ValueError("write postgresql+psycopg2://... rather than postgresql://...")
    return text


DATA_DIR, BRIEF, PROFILE = "MLPLATFORM_DATA_DIR", "MLPLATFORM_BRIEF", "MLPLATFORM_PROFILE"
CHALLENGER_SHARE, REGISTRY_POLL_S = "MLPLATFORM_CHALLENGER_SHARE", "MLPLATFORM_REGISTRY_POLL_S"
MAX_BODY_BYTES, REPLAY_CLOCK = "MLPLATFORM_MAX_BODY_BYTES", "MLPLATFORM_REPLAY_CLOCK"
INFERENCE_BACKEND = "MLPLATFORM_INFERENCE_BACKEND"
MLFLOW_URI, REDIS, FEAST_REGISTRY = "MLPLATFORM_MLFLOW_URI", "MLPLATFORM_REDIS", "MLPLATFORM_FEAST_REGISTRY"
ENDPOINTS = (MLFLOW_URI, REDIS, FEAST_REGISTRY)
_SERVING = ServingSettings()

VARIABLES = (
    Variable(DATA_DIR, "path", "`./data` (of the working directory)", "root of everything the platform writes "
             "(inputs, lake, runs, models)", _path, "data"),
    Variable(BRIEF, "path", "the bundled churn demo brief", "the brief to run", _path, str(DEMO_BRIEF)),
    Variable(PROFILE, "`local` \\| `production`", "`local`", "where state lives: files (local) or PostgreSQL "
             "and Redis (production, deploy/README.md)", _choice(PROFILES), "local"),
    Variable(CHALLENGER_SHARE, "number in [0, 1]", "unset: the registry's share (the canary's step)",
             "the challenger's share of the entities serving scores", _number(0, 1)),
    Variable(REGISTRY_POLL_S, "seconds > 0", f"`{_SERVING.registry_poll_s:g}`", "how often serving asks the "
             "registry whether the champion, the challenger or its share changed", _number(0, low_open=True),
             str(_SERVING.registry_poll_s)),
    Variable(MAX_BODY_BYTES, f"integer >= {MIN_BODY_BYTES}", f"`{_SERVING.max_body_bytes}`", "largest request "
             "body serving reads; a larger one is refused with 413", _number(MIN_BODY_BYTES, kind=int),
             str(_SERVING.max_body_bytes)),
    Variable(REPLAY_CLOCK, "flag (`1`/`true`/`yes`, `0`/`false`/`no`)", "off", "serving logs the time a "
             "request's `X-Replay-Time` header names (the live demo's replayed traffic)", _flag, "0"),
    Variable(INFERENCE_BACKEND, " \\| ".join(f"`{b}`" for b in (*ROW_BACKENDS, *TORCH_BACKENDS)), "`auto`",
             "how serving scores one row: the fastest path that agrees with the frame path, the frame path "
             "only, or one torch runtime", _choice((*ROW_BACKENDS, *TORCH_BACKENDS)), "auto"),
    Variable(MLFLOW_URI, "SQLAlchemy URL", "none (production only)", "MLflow tracking and registry store, "
             "e.g. `postgresql+psycopg2://mlflow:pw@postgres:5432/mlflow`", _connection),
    Variable(REDIS, "`host:port[,password=...]`", "none (production only)", "Feast's Redis online store",
             str),
    Variable(FEAST_REGISTRY, "SQLAlchemy URL", "none (production only)", "Feast's SQL registry, e.g. "
             "`postgresql+psycopg2://feast:pw@postgres:5432/feast`", _connection),
)


@dataclass(frozen=True)
class Workspace:
    """The folders of one brief's namespace under the data directory."""

    data_dir: Path
    name: str

    @property
    def root(self) -> Path:
        return self.data_dir / self.name

    def table(self, table: "Table | str", name: str | None = None) -> Path:
        """Parquet file of a table: a :class:`~mlplatform.core.tables.Table`, or a layer and name
        (``table("validated", "events")``)."""
        layer, name = layer_and_name(table, name)
        return self.root / "lake" / layer / f"{name}.parquet"

    def partition(self, table: "Table | str", *name_and_key: str) -> Path:
        """Parquet file of one partition: ``partition(table, key)`` or ``partition(layer, name, key)``."""
        layer, name, (key,) = with_rest(table, name_and_key)
        return self.root / "lake" / layer / name / f"{key}.parquet"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def feast_dir(self) -> Path:
        return self.root / "feast"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"


def environment_table() -> str:
    """The Markdown table of :data:`VARIABLES` that docs/architecture.md shows ("Settings")."""
    rows = [f"| `{v.name}` | {v.type} | {v.default} | {v.description} |" for v in VARIABLES]
    return "\n".join(["| variable | type | default | meaning |", "|---|---|---|---|", *rows])
