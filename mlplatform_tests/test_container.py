"""The container files, read by real parsers (no Docker engine runs here): the image is multi-stage, runs as a
non-root user, installs the pinned set, health-checks, and the compose file brings up the whole stack."""

import json
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    parsed = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return [(i["instruction"], i["value"]) for i in parsed.structure if i["instruction"] != "COMMENT"]


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by its name (``FROM ... AS name``), in order."""
    steps = instructions()
    starts = [i for i, (kind, _) in enumerate(steps) if kind == "FROM"]
    return {steps[s][1].split(" AS ")[-1]: steps[s:e] for s, e in zip(starts, [*starts[1:], len(steps)], strict=True)}


def test_the_image_is_multi_stage_installs_the_pinned_set_and_runs_as_a_user():
    stages = _stages()
    assert list(stages) == ["builder", "serving", "dagster"]  # the last stage is the default target
    assert any(kind == "RUN" and "-c constraints.txt" in value for kind, value in stages["builder"])
    serving = stages["serving"]
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in serving
    assert stages["dagster"][0] == ("FROM", "serving AS dagster")  # the same venv and user
    kinds = [kind for kind, _ in serving]
    user = dict(serving)["USER"]
    assert user not in ("root", "0") and kinds.index("USER") < kinds.index("CMD")
    assert not any(kind == "ADD" for kind, _ in instructions())  # nothing fetched at build time from URLs


def test_the_serving_target_runs_the_model_api_and_checks_its_health():
    serving = dict(_stages()["serving"])
    assert json.loads(serving["CMD"])[:2] == ["mlplatform", "serve"]
    assert "MLPLATFORM_HEALTH_URL=http://localhost:8000/health" in serving["ENV"]
    assert "os.environ['MLPLATFORM_HEALTH_URL']" in serving["HEALTHCHECK"]
    assert serving["EXPOSE"].split() == ["8000"]


def test_the_default_target_runs_the_dagster_ui_and_exposes_both_services():
    final = dict(_stages()["dagster"])
    assert json.loads(final["CMD"])[0] == "dagster-webserver"
    assert "MLPLATFORM_HEALTH_URL=http://localhost:3000/server_info" in final["ENV"]
    assert final["EXPOSE"].split() == ["3000", "8000"]


def test_compose_brings_up_the_whole_stack_from_this_image():
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "mlflow", "code", "webserver", "daemon", "serving"} <= set(services)
    assert services["serving"]["command"][:2] == ["mlplatform", "serve"]
    assert services["serving"]["build"]["target"] == "serving"
    assert "8000/health" in " ".join(services["serving"]["healthcheck"]["test"])
    for name in ("code", "webserver", "daemon", "serving"):
        assert services[name].get("build") or services[name].get("image"), name
