"""A real SQLite MLflow registry holding versions of one model, each registered from a run of its own (as the
graph's model_registry asset registers them), for the rollout and promotion tests."""

from pathlib import Path

from mlplatform.core.tracking import client_for


def registry_with_versions(folder: Path, model: str, count: int) -> tuple[str, list[tuple[str, str]]]:
    """The registry's tracking URI and its ``count`` versions of ``model`` as (version, run id), oldest first."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = client_for(uri)
    experiment = client.create_experiment("shop", artifact_location=(folder / "artifacts").as_uri())
    client.create_registered_model(model)
    versions = []
    for _ in range(count):
        run = client.create_run(experiment).info.run_id
        versions.append((str(client.create_model_version(model, f"runs:/{run}/model", run_id=run).version), run))
    return uri, versions
