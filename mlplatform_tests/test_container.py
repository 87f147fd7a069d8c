"""The container files, read by real parsers (no Docker engine runs here): the image is multi-stage, runs as a
non-root user, installs the pinned set, health-checks, and the compose file brings up the whole stack."""

from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    parsed = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return [(i["instruction"], i["value"]) for i in parsed.structure if i["instruction"] != "COMMENT"]


def test_the_image_is_multi_stage_installs_the_pinned_set_and_runs_as_a_user():
    steps = instructions()
    stages = [i for i, (kind, _) in enumerate(steps) if kind == "FROM"]
    assert len(stages) == 2 and steps[stages[0]][1].endswith("AS builder")
    build, final = steps[stages[0]:stages[1]], steps[stages[1]:]
    assert any(kind == "RUN" and "-c constraints.txt" in value for kind, value in build)
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final
    kinds = [kind for kind, _ in final]
    user = dict(final)["USER"]
    assert user not in ("root", "0") and kinds.index("USER") < kinds.index("CMD")
    assert not any(kind == "ADD" for kind, _ in steps)  # nothing fetched at build time from URLs


def test_the_health_check_asks_the_configured_url_and_both_services_are_exposed():
    final = dict(instructions())
    assert "MLPLATFORM_HEALTH_URL=http://localhost:3000/server_info" in final["ENV"]
    assert "os.environ['MLPLATFORM_HEALTH_URL']" in final["HEALTHCHECK"]
    assert final["EXPOSE"].split() == ["3000", "8000"]


def test_compose_brings_up_the_whole_stack_from_this_image():
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "mlflow", "code", "webserver", "daemon", "serving"} <= set(services)
    assert services["serving"]["command"][:2] == ["mlplatform", "serve"]
    assert "8000/health" in " ".join(services["serving"]["healthcheck"]["test"])
    for name in ("code", "webserver", "daemon", "serving"):
        assert services[name].get("build") or services[name].get("image"), name
