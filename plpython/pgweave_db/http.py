"""One pooled HTTP session per backend, with retries and errors that say what to do.

The module lives as long as the database session (it is cached in GD), so the
keep-alive connections are reused by every call a backend makes.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from . import settings
from .errors import fail
from .secrets import redact

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
    except requests.exceptions.ConnectionError as exc:
        if _is_read_timeout(exc):
            fail(f"the model server at {_origin(url)} did not answer within {timeout:g} s",
                 hint="raise the setting ai.http_timeout (seconds), or check the server's load",
                 sqlstate="57014")
        fail(f"cannot reach the model server at {_origin(url)}", hint=unreachable_hint,
             sqlstate="08001")
    except requests.exceptions.RequestException as exc:
        fail(f"request to the model server at {_origin(url)} failed: {type(exc).__name__}",
             hint=unreachable_hint, sqlstate="08000")
    raise AssertionError("unreachable")


def _is_read_timeout(exc: Exception) -> bool:
    """A read timeout surfaces as a ConnectionError once urllib3's retries are exhausted."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError) or "Read timed out" in str(exc)


def error_message(response: requests.Response, *secrets: str | None) -> str:
    """The server's error text from an Ollama- or OpenAI-shaped body, secrets redacted."""
    try:
        body = response.json()
    except ValueError:
        return redact(response.text[:500] or str(response.reason), *secrets)
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        err = err.get("message") or err
    return redact(str(err or body)[:500], *secrets)


def json_body(response: requests.Response, url: str) -> Any:
    """Decode a JSON response, or fail saying the server is not the kind we expected."""
    try:
        return response.json()
    except ValueError:
        fail(f"{_origin(url)} answered with something that is not JSON",
             hint="check that the URL points at an Ollama or OpenAI-compatible server",
             sqlstate="58000")


def _origin(url: str) -> str:
    """Scheme, host and port of a URL: never a path or query that might hold a secret."""
    parts = requests.utils.urlparse(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def call(method: str, url: str, *, payload: Any = None, headers: dict | None = None,
         unreachable_hint: str, models_hint=None, secret: str | None = None) -> Any:
    """Send a request and return its JSON body; map every failure to an error with a hint.

    ``models_hint`` is called for a 404 to list the models the server does have.
    """
    response = request(method, url, json=payload, headers=headers, unreachable_hint=unreachable_hint)
    status = response.status_code
    if status < 400:
        return json_body(response, url)
    message = error_message(response, secret)
    where = _origin(url)
    model = payload.get("model") if isinstance(payload, dict) else None
    if status == 404 and model:
        fail(f"model {model!r} is not available on {where}", detail=message,
             hint=models_hint() if models_hint else None, sqlstate="42704")
    if status in (401, 403):
        fail(f"{where} refused the request: {message}",
             hint="pass api_key, or store the key with ai.store_secret and ai.grant_secret, "
                  "or set it in the server's environment under api_key_name", sqlstate="28000")
    if status == 429:
        fail(f"{where} is rate limiting requests: {message}",
             hint="retry later or lower the request rate", sqlstate="53400")
    if status >= 500:
        fail(f"{where} failed with {status}: {message}",
             hint="check the model server's log", sqlstate="58000")
    fail(f"{where} rejected the request ({status}): {message}", sqlstate="22023",
         hint="the model server refused these arguments (its words are above): fix them and retry")
