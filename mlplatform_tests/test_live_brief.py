"""The live demo's brief is the demo brief except where its docstring says why."""

import yaml

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.live_demo import LAST_MONTH, LiveOptions, live_brief, month_start


def test_the_live_brief_differs_from_the_demo_brief_only_in_the_sections_it_explains(tmp_path) -> None:
    path = live_brief(tmp_path, LiveOptions(interval_s=3))
    live, demo = yaml.safe_load(path.read_text()), yaml.safe_load(DEMO_BRIEF.read_text())
    changed = {key for key in demo.keys() | live.keys() if demo.get(key) != live.get(key)}
    assert changed == {"partition_end", "split", "monitoring", "training", "rollout", "fairness", "rag"}
    for key in changed:
        assert f"``{key}" in (live_brief.__doc__ or ""), key
    brief = load_brief(path)
    assert brief.partition_end == month_start(LAST_MONTH, 1)
    assert (brief.split.train_months, brief.split.validation_months, brief.split.test_months) == (2, 1, 1)
    assert brief.monitoring.sensor_interval_s == 3 and brief.monitoring.retrain_rollout == "canary"
    assert {k: v for k, v in live["rollout"].items() if k not in ("min_rows", "mde")} == \
        {k: v for k, v in demo["rollout"].items() if k not in ("min_rows", "mde")}
    assert live["thresholds"] == demo["thresholds"] and live["metrics"] == demo["metrics"]
