"""Loading the documents question answering searches: Markdown, plain text, HTML and PDF.

Every document keeps the metadata the method's ``metadata_to_preserve`` lists: its source (the path relative to
the folder or pattern it was found under), the page (PDF, 1-based), the section heading above each piece of
text, and a date. The date comes from the document itself where it says one (``date:`` in Markdown front matter,
``<meta name="date">`` in HTML, the PDF's creation date) and otherwise from the file's modification time;
``date_source`` says which.

A file that cannot be read (a corrupt PDF, text that is not UTF-8, a scanned PDF without a text layer) is listed
in :attr:`LoadResult.skipped` with its reason instead of stopping the load half-way; ``strict=True`` turns the
first one into a :class:`DocumentError` naming the file.
"""

import glob
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import yaml

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".html": "html",
            ".htm": "html", ".pdf": "pdf"}
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", re.S)


class DocumentError(ValueError):
    """A document or pattern that cannot be loaded; the message names the file and the fix."""


@dataclass(frozen=True)
class Segment:
    """A stretch of one document under one section heading on one page; paragraphs are split by blank lines."""

    text: str
    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class Document:
    """One loaded document: its relative path, title, date (and where the date came from) and its segments."""

    source: str
    kind: str
    title: str
    date: date | None
    date_source: str  # front_matter | html_meta | pdf_metadata | file_mtime
    segments: tuple[Segment, ...]
    pages: int | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.segments)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def load_documents(patterns: list[str | Path], *, strict: bool = False) -> LoadResult:
    """Load every supported file under ``patterns`` (folders searched recursively, files, or glob patterns).

    A document's ``source`` is its path relative to the folder given (for a file, its folder; for a glob, the
    folder before the first wildcard), with ``/`` separators. Files of other types found in a folder are listed
    as skipped.

    Raises:
        DocumentError: a pattern that matches nothing, two files with the same relative path, or (``strict``) a
            file that cannot be read.
    """
    result = LoadResult()
    seen: dict[str, Path] = {}
    for pattern in patterns:
        base, files = _expand(Path(pattern))
        for path in files:
            source = path.relative_to(base).as_posix()
            if source in seen and seen[source] != path:
                raise DocumentError(f"two documents have the relative path {source}: {seen[source]} and {path}; "
                                    "list their folders so that relative paths differ (e.g. the common parent)")
            if source in seen:
                continue
            seen[source] = path
            kind = SUFFIXES.get(path.suffix.lower())
            if kind is None:
                result.skipped.append(Skipped(source, f"unsupported file type {path.suffix or '(none)'}; supported: "
                                                      f"{', '.join(sorted(SUFFIXES))}"))
                continue
            try:
                document = _load(path, source, kind)
            except DocumentError as err:
                if strict:
                    raise
                result.skipped.append(Skipped(source, str(err)))
                continue
            result.documents.append(document)
    return result


def _expand(pattern: Path) -> tuple[Path, list[Path]]:
    text = str(pattern)
    if any(c in text for c in "*?["):
        parts = pattern.parts
        first = next(i for i, p in enumerate(parts) if any(c in p for c in "*?["))
        base = Path(*parts[:first]) if first else Path(".")
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    elif pattern.is_dir():
        base = pattern
        files = sorted(p for p in pattern.rglob("*") if p.is_file() and not p.name.startswith("."))
    elif pattern.is_file():
        base, files = pattern.parent, [pattern]
    else:
        raise DocumentError(f"documents path {pattern} does not exist; give a folder, a file or a glob pattern "
                            "(e.g. docs/**/*.md)")
    if not files:
        raise DocumentError(f"documents pattern {pattern} matches no file; check the path (relative paths are "
                            "taken from the brief's folder)")
    return base, files


def _load(path: Path, source: str, kind: str) -> Document:
    if kind == "pdf":
        return _load_pdf(path, source)
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DocumentError(f"{source} is not UTF-8 text ({err.reason} at byte {err.start}); re-save it as "
                            "UTF-8") from None
    except OSError as err:
        raise DocumentError(f"{source} cannot be read: {err.strerror}") from None
    if kind == "html":
        segments, title, found = _html_segments(raw)
        when, date_source = (found, "html_meta") if found else (_mtime(path), "file_mtime")
    else:
        meta, body = _front_matter(raw, source)
        segments = _markdown_segments(body) if kind == "markdown" else _text_segments(body)
        title = str(meta.get("title") or _first_heading(segments) or path.stem)
        found = _as_date(meta.get("date"))
        when, date_source = (found, "front_matter") if found else (_mtime(path), "file_mtime")
    if not any(s.text.strip() for s in segments):
        raise DocumentError(f"{source} has no text")
    return Document(source, kind, title, when, date_source, tuple(segments))


def _mtime(path: Path) -> date:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date()


def _as_date(value) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _front_matter(raw: str, source: str) -> tuple[dict, str]:
    match = _FRONT_MATTER.match(raw)
    if not match:
        return {}, raw
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        raise DocumentError(f"{source}: its front matter (between the --- lines) is not valid YAML: "
                            f"{str(err).splitlines()[0]}") from None
    return (meta if isinstance(meta, dict) else {}), raw[match.end():]


def _first_heading(segments: list[Segment]) -> str | None:
    return next((s.section for s in segments if s.section), None)


def _markdown_segments(body: str) -> list[Segment]:
    segments: list[Segment] = []
    section: str | None = None
    lines: list[str] = []
    fenced = False

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text:
            segments.append(Segment(text, None, section))
        lines.clear()

    for line in body.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            flush()
            section = heading.group(2).strip()
        else:
            lines.append(line)
    flush()
    return segments


def _text_segments(body: str) -> list[Segment]:
    text = body.strip()
    return [Segment(text)] if text else []


class _HtmlText(HTMLParser):
    _BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "ul", "ol", "table", "blockquote", "pre", "hr"}
    _SKIP = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.segments: list[Segment] = []
        self.section: str | None = None
        self.title = ""
        self.date: date | None = None
        self._parts: list[str] = []
        self._heading: list[str] | None = None
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "meta" and (values.get("name") or values.get("property") or "").lower() in (
                "date", "dc.date", "article:published_time", "created"):
            self.date = self.date or _as_date(values.get("content"))
        if tag in self._SKIP:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = []
        elif tag in self._BLOCK:
            self._parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        if tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self.section = " ".join("".join(self._heading).split()) or self.section
            self._heading = None
        elif tag in self._BLOCK:
            self._parts.append("\n\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif self._heading is not None:
            self._heading.append(data)
        elif not self._skip:
            self._parts.append(data)

    def _flush(self) -> None:
        paragraphs = [" ".join(p.split()) for p in "".join(self._parts).split("\n\n")]
        text = "\n\n".join(p for p in paragraphs if p)
        if text:
            self.segments.append(Segment(text, None, self.section))
        self._parts = []

    def close(self):
        super().close()
        self._flush()


def _html_segments(raw: str) -> tuple[list[Segment], str, date | None]:
    parser = _HtmlText()
    parser.feed(raw)
    parser.close()
    title = " ".join(parser.title.split()) or _first_heading(parser.segments) or ""
    return parser.segments, title, parser.date


def _load_pdf(path: Path, source: str) -> Document:
    from pypdf import PdfReader  # a fast import, kept local with the other optional formats' parsers

    quiet = logging.getLogger("pypdf")  # its warnings about damaged files repeat what the skip reason says
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise DocumentError(f"{source} is an encrypted PDF; save a copy without a password")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        created = info.creation_date if info is not None else None
        title = (info.title if info is not None else None) or path.stem
    except DocumentError:
        raise
    except Exception as err:  # pypdf raises many types for damaged files; each becomes one message
        raise DocumentError(f"{source} is not a readable PDF ({type(err).__name__}: {err}); re-export it or remove "
                            "it from the documents") from None
    finally:
        quiet.setLevel(level)
    segments = [Segment(_pdf_paragraphs(text), number, None) for number, text in enumerate(pages, start=1)
                if text.strip()]
    if not segments:
        raise DocumentError(f"{source} has no extractable text ({len(pages)} page(s)); a scanned PDF needs OCR "
                            "first")
    when, date_source = (created.date(), "pdf_metadata") if created else (_mtime(path), "file_mtime")
    return Document(source, "pdf", str(title), when, date_source, tuple(segments), pages=len(pages))


def _pdf_paragraphs(text: str) -> str:
    """A PDF page's lines joined into paragraphs: a line break inside a paragraph becomes a space."""
    text = re.sub(r"-\n(?=[a-z])", "", text)  # a word hyphenated at a line end
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
