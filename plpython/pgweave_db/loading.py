"""Load a row's document (a bytea value, a file or a URL) and parse it into cited text parts.

The engine runs this inside a vectorizer's owner-rights function, but a file is opened by the
postgres OS user and a URL fetched from the database server: so the boundary is
ai._document_source, which only a superuser writes (sql/catalog/0009_documents.sql). A path
is checked after symlinks and '..' are resolved, and again on the file actually opened.

Errors carry SQLSTATEs the engine acts on: 22P03 (cannot be read as text) and 54000 (over a
limit) park the item at once, a retry cannot help; 58P01 (missing) and 58030 (unreadable,
unreachable) and 22023 (not allowed) are retried with the queue's back-off, then parked.
"""

from __future__ import annotations

import os
import stat
from urllib.parse import unquote, urlsplit

import plpy

from . import http, parsing, settings
from .errors import fail
from .parsing import DocumentError, Part

PARK_NOW = {"22P03", "54000"}
_LIMITS = None
_SOURCE = None


def document(vz, value) -> list[Part]:
    """The parts of a row's document (none for NULL), by the vectorizer's loading and parsing."""
    if value is None:
        return []
    loading = vz.config["loading"]
    kind = (vz.config.get("parsing") or {}).get("implementation", "auto")
    if loading.get("implementation") == "uri":
        data, content_type, name = load_uri(str(value), int(loading.get("retries", 6)))
    elif isinstance(value, str):
        if kind == "auto":
            return [Part(None, value)]  # a text column: embedded as it is
        data, content_type, name = value, None, None
    else:
        data, content_type, name = bytes(value), None, None
    _check_size(len(data), f"document {_shown(value, loading)}")
    try:
        if kind == "none":
            return parsing.parse("text", data)
        if kind == "auto":
            kind = parsing.detect(data if isinstance(data, bytes) else data.encode(), content_type, name)
        return parsing.run(kind, data, _parser_source(), limit("parse_timeout_seconds"),
                           int(limit("parse_memory_bytes")), http.check_for_interrupts)
    except DocumentError as exc:
        fail(f"document {_shown(value, loading)}: {exc}", sqlstate="54000" if exc.too_costly else "22P03",
             hint=("a superuser may raise the limits: UPDATE ai._document_limit SET value = ... WHERE name = "
                   "'parse_timeout_seconds' (or 'parse_memory_bytes')") if exc.too_costly else
                  "store a PDF, HTML, Markdown, text or DOCX document; the item is parked "
                  "(ai.retry_failed brings it back)")
    raise AssertionError("unreachable")


def cite(where: str | None, chunk: str) -> str:
    """A chunk with where it comes from on its first line, "(page 3)", so RAG can cite it."""
    return chunk if where is None else f"({where})\n{chunk}"


def limit(name: str) -> float:
    """A superuser's bound from ai._document_limit."""
    global _LIMITS
    if _LIMITS is None:
        _LIMITS = plpy.prepare("SELECT value FROM ai._document_limit WHERE name = $1", ["text"])
    rows = plpy.execute(_LIMITS, [name])
    if not rows:
        fail(f"the document limit {name!r} is missing", sqlstate="55000",
             hint="a superuser restores it: INSERT INTO ai._document_limit (name, value) VALUES (...)")
    return float(rows[0]["value"])


def _check_size(size: int, what: str) -> None:
    """Refuse a document over max_document_bytes (54000: parked at once)."""
    most = int(limit("max_document_bytes"))
    if size > most:
        fail(f"{what} is {size} bytes, more than the {most} bytes a document may have", sqlstate="54000",
             hint="a superuser may raise it: UPDATE ai._document_limit SET value = ... "
                  "WHERE name = 'max_document_bytes'")


def _shown(value, loading: dict) -> str:
    """How an error names a document: its URI without query string, or its column."""
    if loading.get("implementation") == "uri":
        return repr(str(value).split("?")[0][:300])
    return f"in column {loading.get('column_name')!r}"


def _parser_source() -> str:
    """The code of pgweave_db.parsing, which the parsing process runs."""
    global _SOURCE
    if _SOURCE is None:
        _SOURCE = plpy.execute("SELECT source FROM ai._python_module "
                               "WHERE name OPERATOR(pg_catalog.=) 'pgweave_db.parsing'")[0]["source"]
    return _SOURCE


# ----- where documents come from -----------------------------------------------------------------

def load_uri(uri: str, retries: int) -> tuple[bytes, str | None, str]:
    """(bytes, content type or None, name) of the document a URI or absolute path names."""
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ("file" if uri.startswith("/") else "")
    loader = _SCHEMES.get(scheme)
    if loader is None:
        fail(f"document {uri.split('?')[0][:300]!r}: "
             + (f"{scheme}:// URIs are not supported" if scheme else "not an absolute path or URL"),
             sqlstate="22023",
             hint="store an absolute path, a file:// URI or an http(s) URL; other schemes (s3://) "
                  "would be a loader in pgweave_db/loading.py's _SCHEMES")
    return loader(uri, retries)


def _sources(prefix: str) -> list[str]:
    """The allowed locations (ai._document_source) of one kind: '/' directories or 'http' URLs."""
    return [r["location"] for r in plpy.execute(
        f"SELECT location FROM ai._document_source WHERE pg_catalog.starts_with(location, {plpy.quote_literal(prefix)})")]


def _below(path: str, directories: list[str]) -> bool:
    """Whether a resolved path lies below one of the (resolved) directories."""
    return any(path.startswith(d.rstrip("/") + "/") for d in directories)


def _read_file(uri: str, retries: int) -> tuple[bytes, None, str]:
    """Read a file below an allowed directory, after resolving symlinks and '..'."""
    path = unquote(urlsplit(uri).path) if uri.lower().startswith("file://") else uri
    directories = [os.path.realpath(d) for d in _sources("/")]
    if not _below(os.path.realpath(path), directories):
        fail(f"document {path[:300]!r} is not below a directory a superuser allowed", sqlstate="22023",
             hint="a superuser allows a directory with INSERT INTO ai._document_source (location) "
                  "VALUES ('/srv/documents'); files are read by the server's OS user")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        fail(f"document {path[:300]!r} does not exist", sqlstate="58P01",
             hint="the item is retried with back-off; fix the path in the row, or put the file there")
    except OSError as exc:
        fail(f"cannot open document {path[:300]!r}: {exc.strerror}", sqlstate="58030",
             hint="the server's OS user (postgres) must be able to read it")
    try:
        # What was opened, not what the name said a moment ago: a symlink swapped in between.
        if not _below(os.readlink(f"/proc/self/fd/{fd}"), directories):
            fail(f"document {path[:300]!r} is not below a directory a superuser allowed", sqlstate="22023")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            fail(f"document {path[:300]!r} is not a regular file", sqlstate="22P03",
                 hint="name a file, not a directory or device")
        _check_size(info.st_size, f"document {path[:300]!r}")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(int(limit("max_document_bytes")) + 1)
        _check_size(len(data), f"document {path[:300]!r}")
        return data, None, path
    finally:
        os.close(fd)


def _check_url(url: str) -> None:
    """Refuse a URL that is not below a prefix in ai._document_source, or whose host the
    model-host allowlist refuses (ai._model_host): the one place that decides which URLs may
    be fetched. Refusals are 22023, so that they are the row's, not the batch's."""
    parts = urlsplit(url)
    shown = url.split("?")[0][:300]
    if parts.username or parts.password or not parts.hostname or "/../" in parts.path + "/" \
            or "%2e" in parts.path.lower():
        fail(f"document URL {shown!r} has credentials, no host, or '..' in its path",
             sqlstate="22023", hint="store a plain http(s) URL")
    if not any(url.startswith(prefix) for prefix in _sources("http")):
        fail(f"document URL {shown!r} is not below a URL prefix a superuser allowed", sqlstate="22023",
             hint="a superuser allows a prefix with INSERT INTO ai._document_source (location) "
                  "VALUES ('https://docs.example.com/')")
    try:
        settings.check_host(url)
    except plpy.Error as exc:
        fail(f"document URL {shown!r}: {exc}", sqlstate="22023", hint=getattr(exc, "hint", None))


def _fetch_url(url: str, retries: int) -> tuple[bytes, str | None, str]:
    """GET a document (http.download: no redirects, bounded, interruptible), retrying
    transient failures (connection, 429, 5xx)."""
    _check_url(url)
    shown = url.split("?")[0][:300]
    most = int(limit("max_document_bytes"))
    try:
        reply = http.download(url, timeout=limit("fetch_timeout_seconds"), max_bytes=most, retries=max(0, retries))
    except http.TooLarge as exc:
        _check_size(exc.args[0], f"document {shown!r}")
        raise
    except http.GaveUp:
        fail(f"cannot fetch document {shown!r}: it did not finish arriving in time", sqlstate="58030",
             hint="the item is retried with back-off; a superuser may raise fetch_timeout_seconds "
                  "in ai._document_limit")
    except http.Failed as exc:
        fail(f"cannot fetch document {shown!r}: {type(exc.cause).__name__}", sqlstate="58030",
             hint=f"tried {retries + 1} times; the item is retried with back-off")
    if reply.status_code in (404, 410):
        fail(f"document {shown!r} does not exist (HTTP {reply.status_code})", sqlstate="58P01",
             hint="the item is retried with back-off; fix the URL in the row")
    if 300 <= reply.status_code < 400:
        fail(f"document {shown!r} redirects elsewhere (HTTP {reply.status_code})", sqlstate="22023",
             hint="store the URL it redirects to (redirects are not followed)")
    if reply.status_code >= 400:
        fail(f"cannot fetch document {shown!r}: HTTP {reply.status_code}", sqlstate="58030",
             hint="the item is retried with back-off")
    return reply.content, reply.content_type, urlsplit(url).path


# Where a loader for another scheme (s3://, gs://) would go: uri, retries -> (bytes, type, name).
_SCHEMES = {"file": _read_file, "http": _fetch_url, "https": _fetch_url}
