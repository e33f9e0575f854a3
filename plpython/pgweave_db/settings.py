"""Resolve where a model server is, whether it may be called, and how long to wait for it.

Order for every value: the function argument, then the setting (GUC), then the default.
What a role must not decide for itself (which hosts, the longest wait, the largest reply)
comes from tables only a superuser writes (sql/catalog/0007_hardening.sql), never from a
setting: any role may SET ai.* or ALTER ROLE itself SET ai.*.
"""

from __future__ import annotations

import ipaddress
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

import plpy

from .errors import fail

DEFAULT_OLLAMA_HOST = "http://localhost:11434"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_RETRIES = 3
# Embedding requests a backfill keeps in flight: the next one is on its way while the backend
# reads the last reply (and a remote server's latency is paid once per two requests).
DEFAULT_IN_FLIGHT = 2.0
MAX_IN_FLIGHT = 8
# Used when the limits table has no row (a superuser deleted it).
DEFAULT_LIMITS = {"max_http_timeout": 600.0, "max_reply_bytes": 32 * 1024 * 1024,
                  "max_chunks_per_row": 10000.0}


_PLANS: dict[str, object] = {}
_read: dict[tuple, list] | None = None  # inside ``read_once``: each statement's rows


def _run(sql: str, types: tuple[str, ...] = (), args: tuple = ()) -> list:
    """Run one of this module's statements, prepared once per session (every model call runs
    several: they were a tenth of a backfill's time when planned afresh each time)."""
    key = (sql, *args)
    if _read is not None and key in _read:
        return _read[key]
    plan = _PLANS.get(sql)
    if plan is None:
        plan = _PLANS[sql] = plpy.prepare(sql, list(types))
    rows = plpy.execute(plan, list(args))
    if _read is not None:
        _read[key] = rows
    return rows


@contextmanager
def read_once() -> Iterator[None]:
    """Within this block every setting, bound and allowed host is read once: the requests of
    one batch all go with the same ones (about six statements a request before, ~3 % of a
    backfill with a fast model server). Only for a block inside one statement that sets
    nothing itself."""
    global _read
    outer = _read
    _read = {} if outer is None else outer
    try:
        yield
    finally:
        _read = outer


def guc(name: str) -> str | None:
    """Return the value of setting ``name``, or None when it is unset or empty."""
    rows = _run("SELECT pg_catalog.current_setting($1, true) AS v", ("text",), (name,))
    value = rows[0]["v"] if rows else None
    return value.strip() if value and value.strip() else None


def ollama_host(host: str | None) -> str:
    """Argument, then ``ai.ollama_host``, then http://localhost:11434."""
    return _normalize_url(host or guc("ai.ollama_host") or DEFAULT_OLLAMA_HOST)


def openai_base_url(base_url: str | None) -> str:
    """Argument, then ``ai.openai_base_url``, then OpenAI's public API."""
    return _normalize_url(base_url or guc("ai.openai_base_url") or DEFAULT_OPENAI_BASE_URL)


def limit(name: str) -> float:
    """A superuser's bound from ai._model_call_limit (its default when the row is gone)."""
    rows = _run("SELECT value FROM ai._model_call_limit WHERE name = $1", ("text",), (name,))
    return float(rows[0]["value"]) if rows else DEFAULT_LIMITS[name]


def timeout_seconds() -> float:
    """``ai.http_timeout`` in seconds (default 120), at most the superuser's max_http_timeout."""
    return min(_positive_float("ai.http_timeout", DEFAULT_TIMEOUT_SECONDS), limit("max_http_timeout"))


def retries() -> int:
    """``ai.http_retries``: retries on connection errors, 429 and 5xx (default 3, at most 10)."""
    return int(min(10.0, _positive_float("ai.http_retries", DEFAULT_RETRIES, allow_zero=True)))


def requests_in_flight() -> int:
    """``ai.embedding_requests_in_flight``: embedding requests a backfill keeps on their way at
    once (default 2, at most 8; 1 waits for each reply before sending the next request)."""
    return int(min(MAX_IN_FLIGHT, max(1.0, _positive_float("ai.embedding_requests_in_flight", DEFAULT_IN_FLIGHT))))


def statement_seconds_left() -> float | None:
    """Seconds until statement_timeout cancels this statement; None without a timeout."""
    row = _run("SELECT pg_catalog.current_setting('statement_timeout') AS timeout, "
               "extract(epoch FROM pg_catalog.statement_timestamp())::pg_catalog.float8 AS started")[0]
    timeout = _duration_seconds(row["timeout"])
    # PostgreSQL's clock_timestamp() and time.time() read the same clock.
    return None if not timeout else max(0.0, timeout - (time.time() - row["started"]))


_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _duration_seconds(shown: str) -> float:
    """A time setting as SHOW prints it ("0", "250ms", "5min"), in seconds (a bare number is
    milliseconds, statement_timeout's unit)."""
    number = shown.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * _TIME_UNITS.get(shown[len(number):], 1e-3)


def _positive_float(name: str, default: float, allow_zero: bool = False) -> float:
    """A numeric setting, its default when unset; an error naming the setting when invalid."""
    raw = guc(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value == value or value < 0 or (value == 0 and not allow_zero):  # NaN too
        fail(f"setting {name} = {raw!r} is not a positive number",
             hint=f"SET {name} = '{default:g}' (or RESET {name})", sqlstate="22023")
    return value


def _normalize_url(url: str) -> str:
    """Strip spaces and trailing slashes; a bare host:port gets http://."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    return f"{scheme}://{rest.rstrip('/')}" if sep else "http://" + url.rstrip("/")


# ----- which hosts may be called --------------------------------------------------------------

def _host_port(url: str) -> tuple[str, int | None]:
    """Lower-case host name (no brackets) and explicit port of a URL; an error when malformed."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        host, port = "", None
    if parts.scheme not in ("http", "https") or not host:
        fail(f"{url!r} is not the http(s) URL of a model server", sqlstate="22023",
             hint="pass e.g. 'http://localhost:11434' (Ollama) or 'https://api.openai.com/v1'")
    return host, port


def _is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1, by its literal form (never resolved)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _configured_urls() -> list[str]:
    """The model URLs a superuser or the database owner configured, plus the built-in defaults."""
    rows = _run("SELECT url FROM ai._configured_model_urls() AS url")
    return [DEFAULT_OLLAMA_HOST, DEFAULT_OPENAI_BASE_URL] + [r["url"] for r in rows if r["url"]]


def check_host(url: str) -> None:
    """Refuse a URL whose host is neither configured nor in ai._model_host."""
    host, port = _host_port(url)
    entries = {r["host"] for r in _run("SELECT host FROM ai._model_host")}
    shown = f"[{host}]" if ":" in host else host
    named = {shown, f"{shown}:{port}" if port else shown}
    if "*" in entries or named & entries or ("loopback" in entries and _is_loopback(host)):
        return
    for configured in _configured_urls():
        try:
            if _host_port(_normalize_url(configured)) == (host, port):
                return
        except plpy.Error:
            continue
    where = f"{shown}:{port}" if port else shown
    fail(f"model host {where} is not allowed", sqlstate="42501",
         hint=f"a superuser allows it with INSERT INTO ai._model_host (host) VALUES ('{where}'), "
              "or configures it: ALTER DATABASE ... SET ai.ollama_host (or ai.openai_base_url) = "
              "'<url>'; a session SET or ALTER ROLE does not make a host allowed")
