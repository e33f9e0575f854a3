"""Resolve where a model server is and how long to wait for it.

Order for every value: the function argument, then the setting (GUC), then the default.
"""

from __future__ import annotations

import plpy

DEFAULT_OLLAMA_HOST = "http://localhost:11434"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_SECONDS = 120.0
DEFAULT_RETRIES = 3


def guc(name: str) -> str | None:
    """Return the value of setting ``name``, or None when it is unset or empty."""
    rows = plpy.execute(f"SELECT pg_catalog.current_setting({plpy.quote_literal(name)}, true) AS v")
    value = rows[0]["v"] if rows else None
    return value.strip() if value and value.strip() else None


def ollama_host(host: str | None) -> str:
    """Argument, then ``ai.ollama_host``, then http://localhost:11434."""
    return _normalize_url(host or guc("ai.ollama_host") or DEFAULT_OLLAMA_HOST)


def openai_base_url(base_url: str | None) -> str:
    """Argument, then ``ai.openai_base_url``, then OpenAI's public API."""
    return _normalize_url(base_url or guc("ai.openai_base_url") or DEFAULT_OPENAI_BASE_URL)


def timeout_seconds() -> float:
    """``ai.http_timeout`` in seconds (default 120)."""
    return _positive_float("ai.http_timeout", DEFAULT_TIMEOUT_SECONDS)


def retries() -> int:
    """``ai.http_retries``: retries on connection errors, 429 and 5xx (default 3)."""
    return int(_positive_float("ai.http_retries", DEFAULT_RETRIES, allow_zero=True))


def _positive_float(name: str, default: float, allow_zero: bool = False) -> float:
    raw = guc(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or (value == 0 and not allow_zero):
        from .errors import fail
        fail(f"setting {name} = {raw!r} is not a positive number",
             hint=f"SET {name} = '{default:g}' (or RESET {name})", sqlstate="22023")
    return value


def _normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url
