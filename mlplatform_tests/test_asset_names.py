"""Asset names are spelled once, in mlplatform.asset_names: no stage names an asset with a string literal, and the
catalogue names exactly the assets the graph has."""

from pathlib import Path

import dagster as dg

from mlplatform import asset_names
from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core import tables
from mlplatform.definitions import build_definitions
from mlplatform.settings import Settings
from mlplatform_tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _script():
    return load_script("lineage_stats")


def _stage_files() -> list[Path]:
    return [*sorted((ROOT / "mlplatform" / "defs").glob("*.py")), ROOT / "mlplatform" / "code_location.py"]


def test_no_stage_names_an_asset_with_a_literal():
    sites = _script().asset_reference_sites(_stage_files(), ROOT)
    assert sites == [], f"name these assets through mlplatform.asset_names: {sites}"


def test_the_literal_finder_sees_every_form_of_asset_reference(tmp_path):
    # The finder the test above relies on: each form a literal asset name can take in a definition.
    source = tmp_path / "stage.py"
    source.write_text(
        "import dagster as dg\n"
        "@dg.asset(name='a1', deps=['a2', *[f'raw_{s}' for s in 'xy']])\n"
        "def a1(): ...\n"
        "@dg.asset_check(asset='a3')\n"
        "def c(): ...\n"
        "spec = dg.AssetSpec('a4', deps=[dg.AssetKey('a5')])\n"
        "job = dg.define_asset_job('j', selection=dg.AssetSelection.assets('a6'))\n"
        "request = dg.RunRequest(asset_selection=['a7'])\n"
        "result = dg.MaterializeResult(asset_key='a8')\n"
        "ok = dg.asset(name=NAME, deps=[OTHER])\n"
        "def _spec(table, deps, key): return dg.AssetSpec(table, deps=deps)\n"
        "helper = _spec(NAME, ['a9'], 'not an asset')\n")
    found = sorted(literal for _, _, literal in _script().asset_reference_sites([source], tmp_path))
    assert found == ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "raw_{}"]


def test_the_catalogue_names_exactly_the_graph_s_assets(tmp_path):
    graph = build_definitions(Settings(tmp_path, DEMO_BRIEF)).resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    per_source = {f(source) for source in load_brief(DEMO_BRIEF).sources
                  for f in (asset_names.raw, asset_names.validated, asset_names.quarantined)}
    table_assets = {t.asset_key for t in vars(tables).values() if isinstance(t, tables.Table)}
    named = {value for name, value in vars(asset_names).items() if name.isupper() and isinstance(value, str)}
    # The demo brief turns every optional stage on (torch, both fairness mitigations, question answering), so
    # each constant names an asset of its graph, and each asset is named by a constant, a source or a table.
    assert named <= keys, f"constants naming no asset: {sorted(named - keys)}"
    assert per_source <= keys
    unnamed = keys - per_source - named
    assert unnamed <= table_assets, f"assets named neither here nor by a lake table: {sorted(unnamed - table_assets)}"
    assert tables.METRICS.asset_key in unnamed


def test_a_misspelt_asset_name_fails_at_import():
    try:
        _ = asset_names.TRAINING_SETT  # type: ignore[attr-defined]
    except AttributeError:
        return
    raise AssertionError("a misspelt asset name resolved")


def test_the_asset_decorators_take_their_key_from_the_catalogue():
    # Renaming an asset is one edit: the function's name no longer decides its key.
    from mlplatform.defs import training

    assert training.training_set.key == dg.AssetKey(asset_names.TRAINING_SET)
