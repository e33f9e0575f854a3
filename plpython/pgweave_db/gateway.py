"""Gateways: SECURITY DEFINER functions that act as the owner of ``ai`` for pgweave's own code.

PostgreSQL checks EXECUTE on every call, so a function the in-database code calls on behalf of
the caller is a function the caller could call directly. A gateway refuses such direct calls:
it answers only while the module that owns it has opened it (``opened``) for the one call it
makes; the tables behind it are written by owner-only functions (``ai._owner_only_functions``
in 90_privileges.sql) that no role may call.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .errors import fail

_open: set[str] = set()


@contextmanager
def opened(name: str) -> Iterator[None]:
    """Let the gateway ``name`` answer for the duration of one call made by pgweave's code."""
    _open.add(name)
    try:
        yield
    finally:
        _open.discard(name)


def require(name: str, hint: str) -> None:
    """The gateways' guard: called from SQL rather than by pgweave's code, refuse."""
    if name not in _open:
        fail(f"ai.{name} is internal to pgweave and cannot be called directly", sqlstate="42501", hint=hint)
