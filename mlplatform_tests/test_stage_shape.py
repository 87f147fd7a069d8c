"""The stages stay thin: asset and check bodies read, call core, write and return metadata, and no stage module
imports another (measured by scripts/asset_body_lengths.py, the script the issue's numbers come from)."""

from pathlib import Path

from mlplatform_tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
# The longest body (lines, docstring included) an asset or check of any stage may have.
MAX_BODY_LINES = 25
# Bodies made thin, at their length when they were: each may not grow back past it.
BODY_LIMITS = {"mlplatform/defs/evaluation.py::evaluation_report": 25,
               "mlplatform/defs/monitoring.py::drift_report": 24,
               "mlplatform/defs/rollout.py::serving_rollout": 25,
               "mlplatform/defs/monitoring.py::performance_report": 25,
               "mlplatform/defs/monitoring.py::prediction_profiles": 25,
               "mlplatform/defs/governance.py::cost_report": 25,
               "mlplatform/defs/rag.py::rag_reranker": 13,
               "mlplatform/defs/rag.py::rag_documents": 24,
               "mlplatform/defs/quality.py::validate": 14,
               "mlplatform/defs/quality.py::data_quality_report": 22,
               "mlplatform/defs/reporting.py::model_card": 20,
               "mlplatform/defs/registry.py::champion_model": 21,
               "mlplatform/defs/registry.py::promotion_gate": 23,
               "mlplatform/defs/training.py::training_set": 20}
# Imports between stage modules still to remove (their helpers belong to other modules' owners).
KNOWN_STAGE_IMPORTS: set[str] = set()


def _script():
    return load_script("asset_body_lengths")


def test_every_stage_s_bodies_stay_short():
    script = _script()
    bodies = script.asset_bodies(sorted((ROOT / "mlplatform" / "defs").glob("*.py")), ROOT)
    assert any(where.endswith("::evaluation_report") for _, where in bodies)  # a multi-asset body passed by call
    too_long = [(lines, where) for lines, where in bodies if lines > MAX_BODY_LINES]
    assert not too_long, f"move logic from these bodies into mlplatform.core (limit {MAX_BODY_LINES}): {too_long}"


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
