"""The demo brief's documents ship inside the package, so the demo indexes the same pages when installed."""

import fnmatch
import os
import tomllib
from pathlib import Path

import mlplatform
from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.rag.documents import load_documents

PACKAGE = Path(mlplatform.__file__).parent
REPO = PACKAGE.parent


def _demo_documents() -> list[Path]:
    rag = load_brief(DEMO_BRIEF).rag
    assert rag is not None
    return [Path(os.path.normpath(rag.resolve(p, Path("/unused"), DEMO_BRIEF.parent)))
            for p in rag.documents if "{data_dir}" not in p]


def test_the_demo_indexes_the_readme_and_every_docs_page_from_inside_the_package():
    documents = _demo_documents()
    assert documents and all(p.is_relative_to(PACKAGE) for p in documents)
    loaded = load_documents(documents, strict=True)
    sources = {d.source for d in loaded.documents}
    assert sources == {"README.md", *(p.name for p in (REPO / "docs").glob("*.md"))}
    readme = next(d for d in loaded.documents if d.source == "README.md")
    assert readme.segments[0].text.strip() and "".join(s.text for s in readme.segments).strip()


def test_every_demo_document_is_package_data():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mlplatform"]
    files = [f for p in _demo_documents() for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    unshipped = [f for f in files if f.is_file()
                 and not any(fnmatch.fnmatch(f.relative_to(PACKAGE).as_posix(), x) for x in patterns)]
    assert files and not unshipped, f"add these to [tool.setuptools.package-data] in pyproject.toml: {unshipped}"
