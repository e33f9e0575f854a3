"""Find API keys without ever exposing them.

Order for a key named ``name`` (e.g. OPENAI_API_KEY): the ``api_key`` argument; the
session setting ``ai.<name in lower case>``; the secret store ``ai._secret``, whose row-level
security shows a row only to roles granted it with ``ai.grant_secret``; the environment of
the PostgreSQL server, for names a superuser listed in ``ai._environment_secret`` only (the
environment also holds paths and perhaps cloud credentials, which no role may send away).
A key never reaches an error, a log line or a catalog row: every
message that might echo it goes through ``redact``.
"""

from __future__ import annotations

import os
import re

import plpy

from .settings import guc

_KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_KEY_LIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{6,}")


def resolve(api_key: str | None, api_key_name: str | None) -> str | None:
    """Return the API key to send, or None when no key is configured."""
    if api_key:
        return api_key
    if not api_key_name:
        return None
    if not _KEY_NAME.match(api_key_name):
        from .errors import fail
        fail(f"api_key_name {api_key_name!r} is not a valid secret name",
             hint="use letters, digits and underscores, e.g. 'OPENAI_API_KEY'", sqlstate="22023")
    value = guc("ai." + api_key_name.lower())
    if value:
        return value
    rows = plpy.execute(plpy.prepare("SELECT value FROM ai._secret WHERE name = $1", ["text"]),
                        [api_key_name])
    if rows:
        return rows[0]["value"]
    allowed = plpy.execute(plpy.prepare("SELECT 1 FROM ai._environment_secret WHERE name = $1", ["text"]),
                           [api_key_name])
    return (os.environ.get(api_key_name) or None) if allowed else None


def redact(text: str, *secrets: str | None) -> str:
    """Remove the given secrets, and anything shaped like an API key, from ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)
