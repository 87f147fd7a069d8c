"""How thin the stages are: the longest asset and check bodies, the biggest modules, and which stage imports another.

Prints, for ``mlplatform/defs`` (or the checkout ``--root DIR`` names):

- the longest bodies (lines from the first statement, docstring included, to the end) of functions decorated
  with, or passed to, ``asset``, ``multi_asset``, ``asset_check``, ``multi_asset_check`` or ``graph_asset``;
- the biggest modules under ``mlplatform/`` (lines);
- every import of one ``mlplatform.defs`` module by another (module-level or inside a function).

Run: ``.venv/bin/python scripts/asset_body_lengths.py [--top N] [--root DIR]``.
"""

import ast
import sys
from pathlib import Path

ASSET_DECORATORS = {"asset", "multi_asset", "asset_check", "multi_asset_check", "graph_asset"}


def _name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""


def _wrapped_names(tree: ast.Module) -> set[str]:
    """Functions passed to a decorator factory by call rather than with ``@``: ``dg.multi_asset(...)(body)``."""
    return {call.args[0].id for call in ast.walk(tree)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Call) and _name(call.func) in ASSET_DECORATORS
            and call.args and isinstance(call.args[0], ast.Name)}


def asset_bodies(files: list[Path], root: Path) -> list[tuple[int, str]]:
    """(body lines, ``path::function``) of every asset or check body in ``files``, longest first."""
    bodies = []
    for path in files:
        tree = ast.parse(path.read_text())
        wrapped = _wrapped_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and (
                    node.name in wrapped or any(_name(d) in ASSET_DECORATORS for d in node.decorator_list)):
                lines = (node.end_lineno or node.lineno) - node.body[0].lineno + 1
                bodies.append((lines, f"{path.relative_to(root)}::{node.name}"))
    return sorted(bodies, reverse=True)


def defs_imports(files: list[Path], root: Path) -> list[str]:
    """``importer -> imported`` for each import of one defs module by another."""
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                       else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for module in modules:
                if module.startswith("mlplatform.defs.") and module.rsplit(".", 1)[1] != path.stem:
                    found.append(f"{path.relative_to(root)} -> {module}")
    return sorted(set(found))


def biggest_modules(package: Path, root: Path) -> list[tuple[int, str]]:
    return sorted(((len(p.read_text().splitlines()), str(p.relative_to(root))) for p in package.rglob("*.py")),
                  reverse=True)


def main() -> None:
    root = (Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv
            else Path(__file__).resolve().parents[1])
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 10
    defs_files = sorted((root / "mlplatform" / "defs").glob("*.py"))
    print("longest asset/check bodies (lines):")
    for lines, where in asset_bodies(defs_files, root)[:top]:
        print(f"  {lines:4d} {where}")
    print("biggest modules (lines):")
    for lines, where in biggest_modules(root / "mlplatform", root)[:top]:
        print(f"  {lines:4d} {where}")
    imports = defs_imports(defs_files, root)
    print(f"defs modules importing another defs module: {len(imports)}")
    for line in imports:
        print(f"  {line}")


if __name__ == "__main__":
    main()
