"""Measure how the code names its lake tables and how much of the data flow the asset graph declares.

Prints, for the package under ``mlplatform/`` (the catalogue ``mlplatform/core/tables.py`` excluded):

- table-name literals: string literals passed as the layer or table name to a lake read or write
  (``read_table``, ``scan_table``, ``write_table``, ``write_partition``, ``Workspace.table``/``partition``),
  counted per literal occurrence, with the most repeated names;
- asset-name literals: string literals in ``deps=``, ``asset=``, ``additional_deps=`` and ``AssetKey(...)``, and
  the wider count of every asset reference (``AssetSpec``/``AssetIn``/``AssetOut`` names, ``AssetSelection.assets``,
  ``asset_selection=``, ``asset_key=``, asset decorators' ``name=``) — ``mlplatform/asset_names.py`` names them all;
- the demo brief's asset graph (``mlplatform.definitions.defs``): assets, dependency edges, asset checks, and
  assets without children;
- the ten longest asset/check bodies (lines) and the ten biggest modules under ``mlplatform/defs``.

Run: ``.venv/bin/python scripts/lineage_stats.py`` (``--no-graph`` skips loading the definitions).
"""

import ast
import collections
import sys
from pathlib import Path

# --root DIR measures another checkout (an exported earlier commit, say) with this script.
ROOT = (Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv
        else Path(__file__).resolve().parents[1])
PACKAGE = ROOT / "mlplatform"
CATALOGUE = PACKAGE / "core" / "tables.py"
LAKE_CALLS = {"read_table", "scan_table", "write_table", "write_partition", "table", "partition"}
# Module helpers that take the platform or workspace first, then the layer and name.
HELPER_CALLS = {"_table"}
ASSET_NAME_KEYWORDS = {"deps", "asset", "additional_deps", "assets", "selection"}
# The wider measure: also a job's or run request's asset_selection, a materialisation's asset_key, the name= of an
# asset decorator, and the positional asset names of AssetKey, AssetSpec, AssetIn, AssetOut and
# AssetSelection.assets.
SELECTION_KEYWORDS = {*ASSET_NAME_KEYWORDS, "asset_selection", "asset_key", "key"}
NAME_POSITIONAL_CALLS = {"AssetKey", "AssetSpec", "AssetIn", "AssetOut", "assets"}
NAMED_DECORATORS = {"asset", "graph_asset"}  # a multi_asset's name is its op's, not an asset's
ASSET_DECORATORS = {"asset", "multi_asset", "asset_check", "multi_asset_check", "graph_asset"}


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _str_literals(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _direct_literals(args: list[ast.expr]) -> list[str]:
    """String constants (or f-strings' constant parts) used directly as a layer or table-name argument."""
    found = []
    for arg in args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.append(arg.value)
        elif isinstance(arg, ast.JoinedStr):
            found.extend(v.value for v in arg.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return found


def table_literals(files: list[Path]) -> tuple[int, int, collections.Counter]:
    """(layer literals, table-name literals, Counter of table-name literals) in lake reads and writes."""
    layers, names = 0, collections.Counter()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            first = 1 if _call_name(node) in HELPER_CALLS else 0 if _call_name(node) in LAKE_CALLS else None
            if first is not None and len(node.args) >= first + 2:
                layer_args = _direct_literals(node.args[first:first + 1])
                name_args = _direct_literals(node.args[first + 1:first + 2])
                layers += len(layer_args)
                for name in name_args:
                    names[name] += 1
    return layers, sum(names.values()), names


def asset_name_literals(files: list[Path]) -> int:
    count = 0
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                if _call_name(node) == "AssetKey":
                    count += len(_str_literals(node))
                    continue
                for keyword in node.keywords:
                    if keyword.arg in ASSET_NAME_KEYWORDS:
                        count += len(_direct_literals(_flatten(keyword.value)))
    return count


def asset_reference_sites(files: list[Path], root: Path = ROOT) -> list[tuple[str, int, str]]:
    """``(module, line, literal)`` of each asset-name literal in any form a Dagster call takes one (see
    ``SELECTION_KEYWORDS``, ``NAME_POSITIONAL_CALLS``, ``NAMED_DECORATORS``), comprehensions' elements included;
    an f-string counts once, by its constant parts."""
    found = []
    for path in files:
        where = str(path.relative_to(root))
        tree = ast.parse(path.read_text())
        helpers = _asset_parameters(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            values = [a for arg in node.args for a in _elements(arg)] if name in NAME_POSITIONAL_CALLS else []
            values += [a for i, arg in enumerate(node.args) if i in helpers.get(name, ()) for a in _elements(arg)]
            for keyword in node.keywords:
                if keyword.arg in SELECTION_KEYWORDS or (keyword.arg == "name" and name in NAMED_DECORATORS):
                    values += _elements(keyword.value)
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.append((where, value.lineno, value.value))
                elif isinstance(value, ast.JoinedStr):
                    found.append((where, value.lineno, "".join(
                        v.value if isinstance(v, ast.Constant) else "{}" for v in value.values)))
    return found


def _asset_parameters(tree: ast.Module) -> dict[str, set[int]]:
    """The module's own functions taking an asset name or a deps list (a parameter named like Dagster's: ``deps``,
    ``asset``, ``asset_key``..., not a bare ``key``), with those parameters' positions: ``_table_spec(table, deps)``
    passes its ``deps`` on to an ``AssetSpec``, so a literal given to it is a literal dependency too."""
    helpers = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positions = {i for i, arg in enumerate(node.args.args) if arg.arg in SELECTION_KEYWORDS - {"key"}}
            if positions:
                helpers[node.name] = positions
    return helpers


def _elements(node: ast.expr) -> list[ast.expr]:
    """The expressions a deps list or selection names: list/tuple/set items, starred and comprehension
    elements."""
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [e for item in node.elts for e in _elements(item)]
    if isinstance(node, ast.Starred):
        return _elements(node.value)
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
        return _elements(node.elt)
    return [node]


def _flatten(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [e for item in node.elts for e in _flatten(item)]
    return [node]


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""


def longest_asset_bodies(files: list[Path], top: int = 10) -> list[tuple[int, str]]:
    bodies = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    _decorator_name(d) in ASSET_DECORATORS for d in node.decorator_list):
                lines = (node.end_lineno or node.lineno) - node.body[0].lineno + 1
                bodies.append((lines, f"{path.relative_to(ROOT)}::{node.name}"))
    return sorted(bodies, reverse=True)[:top]


def graph_numbers() -> dict:
    sys.path.insert(0, str(ROOT))
    from mlplatform.definitions import defs

    graph = defs().resolve_asset_graph()  # the code location is built when loaded (a @dg.definitions function)
    keys = [key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable]
    edges = sum(len(graph.get(key).parent_keys) for key in keys)
    checks = len(list(graph.asset_check_keys))
    leaves = sorted(key.to_user_string() for key in keys if not graph.get(key).child_keys)
    brief_children = sorted(k.to_user_string() for k in graph.get(dg_key("problem_brief")).child_keys)
    return {"assets": len(keys), "edges": edges, "checks": checks, "assets without children": len(leaves),
            "problem_brief children": len(brief_children)}


def dg_key(name: str):
    import dagster as dg

    return dg.AssetKey(name)


def main() -> None:
    files = sorted(p for p in PACKAGE.rglob("*.py") if p != CATALOGUE)
    defs_files = sorted((PACKAGE / "defs").glob("*.py"))
    layers, names, counter = table_literals(files)
    print(f"table-name literals in lake reads/writes: {names} (layer literals: {layers})")
    print("  most repeated: " + ", ".join(f"{n} x{c}" for n, c in counter.most_common(8)))
    print(f"  distinct literal table names: {len(counter)}")
    print(f"asset-name literals (deps=/asset=/AssetKey): {asset_name_literals(files)}")
    references = collections.Counter(where for where, _, _ in asset_reference_sites(files))
    print(f"asset-name literals in any asset reference (also AssetSpec/AssetIn/selections/asset_key=/name=): "
          f"{sum(references.values())}")
    if references:
        print("  by module: " + ", ".join(f"{m} x{c}" for m, c in references.most_common(8)))
    if "--no-graph" not in sys.argv:
        for label, value in graph_numbers().items():
            print(f"graph {label}: {value}")
    print("longest asset/check bodies (lines):")
    for lines, where in longest_asset_bodies(defs_files):
        print(f"  {lines:4d} {where}")
    print("biggest defs modules (lines):")
    sizes = sorted(((len(p.read_text().splitlines()), p.relative_to(ROOT)) for p in defs_files), reverse=True)
    for lines, where in sizes[:10]:
        print(f"  {lines:4d} {where}")


if __name__ == "__main__":
    main()
