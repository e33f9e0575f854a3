"""Turn a document's bytes into text parts, each with where it comes from (page, section).

Self-contained on purpose (the standard library and Debian's python3-pypdf, python3-bs4 and
python3-docx, imported where used): ``run`` parses PDF, HTML and DOCX in a process of the
server's python3 that executes this very module, under an address-space limit and a deadline,
so a hostile or huge file costs one killed process, never the backend. Text and Markdown are
split here (linear, bounded by the document size limit).
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import sys
import time
import zipfile
from typing import Callable, NamedTuple

KINDS = ("pdf", "html", "markdown", "text", "docx")
_IN_CHILD = ("pdf", "html", "docx")
_CONTENT_TYPES = {
    "application/pdf": "pdf", "text/html": "html", "application/xhtml+xml": "html",
    "text/markdown": "markdown", "text/x-markdown": "markdown", "text/plain": "text",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}
_SUFFIXES = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".md": "markdown",
             ".markdown": "markdown", ".txt": "text", ".text": "text", ".docx": "docx"}
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SLICE_SECONDS = 0.1


class Part(NamedTuple):
    """Text of a document and where it comes from ("page 3", "section: Setup / Linux"), or None."""

    where: str | None
    text: str


class DocumentError(Exception):
    """The document cannot be read as text (corrupt, unsupported, too slow or too big to parse)."""

    def __init__(self, message: str, too_costly: bool = False):
        super().__init__(message)
        self.too_costly = too_costly


def detect(data: bytes, content_type: str | None = None, name: str | None = None) -> str:
    """The kind of a document: magic bytes first, then content type, then file name, then sniffing."""
    head = data[:1024]
    if head.lstrip(b"\r\n\t \x00\xef\xbb\xbf")[:5] == b"%PDF-":
        return "pdf"
    if head[:4] == b"PK\x03\x04":
        try:
            if "word/document.xml" in zipfile.ZipFile(io.BytesIO(data)).namelist():
                return "docx"
        except zipfile.BadZipFile:
            pass
        raise DocumentError("a ZIP archive that is not a Word .docx document")
    kind = _CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())
    if kind is None and name:
        kind = _SUFFIXES.get(os.path.splitext(name.split("?")[0].lower())[1])
    if kind:
        return kind
    text = _decode(data)
    start = text.lstrip()[:200].lower()
    if start.startswith(("<!doctype html", "<html", "<?xml")) or "<body" in text[:4096].lower():
        return "html"
    if any(_MD_HEADING.match(line) for line in text.splitlines()[:200]):
        return "markdown"
    return "text"


def _decode(data: bytes | str) -> str:
    """UTF-8 text (a BOM dropped); a DocumentError for binary content of no known kind."""
    if isinstance(data, str):
        return data
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError("binary content of no known kind (not PDF, DOCX or UTF-8 text)") from None
    if "\x00" in text:
        raise DocumentError("binary content of no known kind (it contains NUL bytes)")
    return text


def parse(kind: str, data: bytes | str) -> list[Part]:
    """Parse a document of a known kind into parts (in this process)."""
    if kind == "text":
        return [Part(None, _decode(data))]
    if kind == "markdown":
        return _markdown(_decode(data))
    if kind == "pdf":
        return _pdf(data)
    if kind == "html":
        return _html(data)
    if kind == "docx":
        return _docx(data)
    raise DocumentError(f"unknown document kind {kind!r}")


def _sections(blocks: list[tuple[int, str]], title: Callable[[str], str] = str) -> list[Part]:
    """Group (heading level or 0, text) blocks into one part per heading's section; a section
    is named by its headings' titles (``title`` of each heading's text)."""
    parts: list[Part] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        text = "\n".join(lines).strip()
        if text:
            parts.append(Part("section: " + " / ".join(t for _, t in path) if path else None, text))
        lines.clear()

    for level, text in blocks:
        if level:
            flush()
            path[:] = [p for p in path if p[0] < level] + [(level, " ".join(title(text).split()))]
        lines.append(text)
    flush()
    return parts


def _markdown(text: str) -> list[Part]:
    """Markdown as written, split at ATX headings (not inside fenced code)."""
    blocks, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _MD_HEADING.match(line)
        blocks.append((len(match.group(1)), line) if match else (0, line))
    return _sections(blocks, lambda line: _MD_HEADING.match(line).group(2))


def _pdf(data: bytes) -> list[Part]:
    """One part per page with text (pypdf); a PDF without any text is an error (no OCR)."""
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise DocumentError("the PDF is encrypted")
    parts = [Part(f"page {n}", text.strip()) for n, page in enumerate(reader.pages, 1)
             if (text := page.extract_text() or "").strip()]
    if not parts:
        raise DocumentError("the PDF has no text to extract (a scan? pgweave does no OCR)")
    return parts


def _html(data: bytes | str) -> list[Part]:
    """The visible text of a page (Beautiful Soup), split at h1-h3."""
    import bs4

    soup = bs4.BeautifulSoup(data, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    blocks: list[tuple[int, str]] = []
    body = soup.body or soup
    for element in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "th",
                                  "dt", "dd", "blockquote", "figcaption", "caption"]):
        if element.find_parent(["p", "li", "pre", "td", "th", "dd", "blockquote"]):
            continue  # its text is in its block's
        text = element.get_text(" " if element.name != "pre" else "", strip=element.name != "pre")
        if element.name != "pre":
            text = " ".join(text.split())
        if text:
            level = int(element.name[1]) if element.name in ("h1", "h2", "h3") else 0
            blocks.append((level, text))
    if not blocks:  # no block elements: the page's text as it is
        blocks = [(0, " ".join(body.get_text(" ").split()))]
    return _sections(blocks)


def _docx(data: bytes) -> list[Part]:
    """Paragraphs (split at Heading 1-3 and Title) and then tables' rows, of a .docx (python-docx)."""
    import docx

    document = docx.Document(io.BytesIO(data))
    blocks: list[tuple[int, str]] = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        match = re.match(r"Heading ([1-3])$", style)
        level = 1 if style == "Title" else int(match.group(1)) if match else 0
        if paragraph.text.strip():
            blocks.append((level, paragraph.text))
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            if any(cells):
                blocks.append((0, " | ".join(cells)))
    return _sections(blocks)


# ----- the parsing process ---------------------------------------------------------------------
# One per backend, kept for the next documents (starting Python and importing a parser costs
# about ten times a page's parse). A request is a JSON line {"kind", "size", "seconds"} and the
# document's bytes; the reply one JSON line, {"parts": [[where, text], ...]} or {"error": why}.
# The backend kills it when a document outlasts its deadline, and starts another for the next.

_BOOT = ("import sys, types; m = types.ModuleType('pgweave_parsing'); "
         "exec(compile(sys.argv[1], 'parsing.py', 'exec'), m.__dict__); m.child_main(sys.argv[2:])")
_RECYCLE_AFTER = 500  # documents, so that whatever a parser leaks is bounded too
_worker: dict = {}


def python() -> str:
    """The server's python3 (the interpreter PL/Python is built on)."""
    for candidate in (os.path.join(sys.base_exec_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}"),
                      "/usr/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise DocumentError("the server's python3 was not found to parse documents with")


def _process(source: str, memory: int) -> subprocess.Popen:
    """This backend's parsing process for this code and memory limit (started when needed)."""
    key = (hash(source), memory)
    proc = _worker.get("proc")
    if proc is not None and (_worker.get("key") != key or proc.poll() is not None
                             or _worker.get("served", 0) >= _RECYCLE_AFTER):
        _stop()
        proc = None
    if proc is None:
        proc = subprocess.Popen([python(), "-I", "-c", _BOOT, source, str(int(memory))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, close_fds=True)
        _worker.update(proc=proc, key=key, served=0)
    _worker["served"] += 1
    return proc


def _stop() -> None:
    """Kill this backend's parsing process, if any."""
    proc = _worker.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait()


def run(kind: str, data: bytes | str, source: str, timeout: float, memory: int,
        check: Callable[[], None]) -> list[Part]:
    """Parse a document: text and Markdown here, the rest in the parsing process, with limits.

    ``source`` is this module's code (the process runs it); ``check`` is called between waits
    (it raises when PostgreSQL wants the statement to stop: the process is killed then too).
    """
    if kind not in _IN_CHILD:
        return parse(kind, data)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    deadline = time.monotonic() + timeout
    proc = _process(source, memory)
    finished = False
    try:
        header = json.dumps({"kind": kind, "size": len(raw), "seconds": int(timeout) + 1}).encode()
        proc.stdin.write(header + b"\n" + raw)
        proc.stdin.flush()
        reply = bytearray()
        while not reply.endswith(b"\n"):
            if select.select([proc.stdout], [], [], _SLICE_SECONDS)[0]:
                piece = os.read(proc.stdout.fileno(), 1 << 16)
                if not piece:  # it died: its own alarm, or the memory limit outside Python's reach
                    raise DocumentError(f"parsing the {kind.upper()} document exceeded its limits "
                                        f"(the parsing process ended)", too_costly=True)
                reply += piece
            else:
                check()
            if time.monotonic() > deadline:
                raise DocumentError(f"parsing the {kind.upper()} document took longer than {timeout:g} s",
                                    too_costly=True)
        finished = True
    except BrokenPipeError:
        raise DocumentError(f"parsing the {kind.upper()} document exceeded its limits "
                            f"(the parsing process ended)", too_costly=True) from None
    finally:
        if not finished:
            _stop()
    answer = json.loads(reply)
    if "parts" in answer:
        return [Part(w, t) for w, t in answer["parts"]]
    if answer.get("memory"):
        _stop()
    raise DocumentError(answer["error"], too_costly=bool(answer.get("memory")))


def child_main(args: list[str]) -> None:
    """In the parsing process: limit its memory, then answer requests until stdin closes."""
    import logging
    import resource
    import signal
    import warnings

    memory = int(args[0])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    logging.disable(logging.CRITICAL)  # parsers log their complaints: nobody reads them here
    warnings.simplefilter("ignore")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while line := stdin.readline():
        request = json.loads(line)
        data = stdin.read(request["size"])
        signal.alarm(request["seconds"])  # ends this process even if its backend is gone
        try:
            answer = {"parts": [list(p) for p in parse(request["kind"], data)]}
        except MemoryError:
            answer = {"error": f"parsing the {request['kind'].upper()} document exceeded its memory limit",
                      "memory": True}
        except Exception as exc:  # a corrupt document raises anything; its class and words say why
            said = " ".join(str(exc).split())[:300]
            answer = {"error": said if isinstance(exc, DocumentError) else
                      f"cannot parse the {request['kind'].upper()} document: {type(exc).__name__}: {said}"}
        signal.alarm(0)
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()
