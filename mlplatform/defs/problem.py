"""Stage: problem definition (method phase 1)."""

import dagster as dg
import yaml

from mlplatform import asset_names
from mlplatform.brief import DocumentsBrief
from mlplatform.core.readable import readable
from mlplatform.resources.platform import PlatformResource


@dg.asset(name=asset_names.PROBLEM_BRIEF, group_name="problem", kinds={"yaml"})
def problem_brief(platform: PlatformResource) -> dg.MaterializeResult:
    """The validated problem brief: objective, success metric, task, consumers, thresholds and kill criteria."""
    brief = platform.any_brief
    body = yaml.safe_dump(brief.model_dump(mode="json"), sort_keys=False)
    if isinstance(brief, DocumentsBrief):  # question answering over documents: no task, no metric of a model
        summary = {"kind": "rag: question answering over documents",
                   "business_objective": brief.problem.business_objective if brief.problem else "not stated"}
    else:
        summary = {"task_type": brief.task_type, "primary_metric": brief.metrics.primary,
                   "business_objective": brief.problem.business_objective}
    return dg.MaterializeResult(
        metadata=readable({
            **summary,
            "brief": dg.MetadataValue.md(f"```yaml\n{body}```"),
            "path": dg.MetadataValue.path(platform.brief_path),
        })
    )


def build(brief) -> list:
    return [problem_brief]
