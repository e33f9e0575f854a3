"""One pooled HTTP session per backend, with retries and errors that say what to do.

The module lives as long as the database session (it is cached in GD), so the
keep-alive connections are reused by every call a backend makes.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import settings
from .errors import fail

_sessions: dict[tuple[str, int], requests.Session] = {}

# Retried: connection errors, 429 and 5xx. Never retried: other 4xx (the request is wrong).
_RETRY_STATUS = (429, 500, 502, 503, 504)


def session(retries: int) -> requests.Session:
    """Return this backend's pooled session for the given retry count."""
    key = ("default", retries)
    if key not in _sessions:
        retry = Retry(
            total=retries, connect=retries, read=0, status=retries,
            backoff_factor=0.25, status_forcelist=_RETRY_STATUS,
            allowed_methods=frozenset({"GET", "POST"}), raise_on_status=False,
            respect_retry_after_header=True,
        )
        sess = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=4)
        sess.mount("http://", adapter)
        sess.mount("https://", adapter)
        _sessions[key] = sess
    return _sessions[key]


def request(method: str, url: str, *, json: Any = None, headers: dict | None = None,
            unreachable_hint: str) -> requests.Response:
    """Send one request; turn transport failures into errors with a hint."""
    timeout = settings.timeout_seconds()
    try:
        return session(settings.retries()).request(method, url, json=json, headers=headers,
                                                   timeout=timeout)
    except requests.exceptions.Timeout:
        fail(f"the model server at {_origin(url)} did not answer within {timeout:g} s",
             hint="raise the setting ai.http_timeout (seconds), or check the server's load",
             sqlstate="57014")
    except requests.exceptions.ConnectionError:
        fail(f"cannot reach the model server at {_origin(url)}", hint=unreachable_hint,
             sqlstate="08001")
    except requests.exceptions.RequestException as exc:
        fail(f"request to the model server at {_origin(url)} failed: {type(exc).__name__}",
             hint=unreachable_hint, sqlstate="08000")
    raise AssertionError("unreachable")


def error_message(response: requests.Response) -> str:
    """Extract the server's error text from an Ollama- or OpenAI-shaped error body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err or body)[:500]


def _origin(url: str) -> str:
    """Scheme, host and port of a URL: never a path or query that might hold a secret."""
    parts = requests.utils.urlparse(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
