"""The stages stay thin: asset and check bodies read, call core, write and return metadata, and no stage module
imports another (measured by scripts/asset_body_lengths.py, the script the issue's numbers come from)."""

from pathlib import Path

from mlplatform_tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
# The stages made thin so far, and the longest body (lines, docstring included) each may have.
THIN_STAGES = ("training", "evaluation", "registry", "reporting")
MAX_BODY_LINES = 33
# Bodies made thinner than MAX_BODY_LINES, in other stages too: each may not grow back past its limit.
BODY_LIMITS = {"mlplatform/defs/rollout.py::serving_rollout": 25,
               "mlplatform/defs/monitoring.py::performance_report": 25,
               "mlplatform/defs/governance.py::cost_report": 26,
               "mlplatform/defs/rag.py::rag_reranker": 13}
# Imports between stage modules still to remove (their helpers belong to other modules' owners).
KNOWN_STAGE_IMPORTS: set[str] = set()


def _script():
    return load_script("asset_body_lengths")


def test_the_thin_stages_bodies_stay_short():
    script = _script()
    files = [ROOT / "mlplatform" / "defs" / f"{name}.py" for name in THIN_STAGES]
    bodies = script.asset_bodies(files, ROOT)
    assert any(where.endswith("::evaluation_report") for _, where in bodies)  # a multi-asset body passed by call
    too_long = [(lines, where) for lines, where in bodies if lines > MAX_BODY_LINES]
    assert not too_long, f"move logic from these bodies into mlplatform.core: {too_long}"


def test_the_bodies_made_thin_stay_within_their_limits():
    script = _script()
    files = sorted({ROOT / where.split("::")[0] for where in BODY_LIMITS})
    lengths = {where: lines for lines, where in script.asset_bodies(files, ROOT)}
    assert set(BODY_LIMITS) <= set(lengths), f"no such asset bodies: {sorted(set(BODY_LIMITS) - set(lengths))}"
    too_long = {where: lengths[where] for where, limit in BODY_LIMITS.items() if lengths[where] > limit}
    assert not too_long, f"move logic from these bodies into mlplatform.core (limits {BODY_LIMITS}): {too_long}"


def test_no_new_import_of_one_stage_by_another():
    script = _script()
    found = set(script.defs_imports(sorted((ROOT / "mlplatform" / "defs").glob("*.py")), ROOT))
    assert found <= KNOWN_STAGE_IMPORTS, (f"stage modules import each other: {sorted(found - KNOWN_STAGE_IMPORTS)}; "
                                          "move the shared helper into mlplatform.core or mlplatform.stage_io")
