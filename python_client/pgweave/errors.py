"""Errors of the pgweave client: one class per kind of problem, keeping the database's words.

Every error from the database is raised as a subclass of :class:`PgweaveError` chosen by its
SQLSTATE, with the server's message, detail and hint kept as they are (they already say what
to do); the original psycopg error is the ``__cause__``. Catch :class:`PgweaveError` for all
of them, or a subclass for one kind::

    try:
        client.retry_failed("blog_embedding")
    except pgweave.VectorizerNotFound as exc:
        print(exc.message, exc.hint)   # 'vectorizer "blog_embedding" does not exist', 'existing ...'
"""

from __future__ import annotations

import re

import psycopg

__all__ = [
    "PgweaveError", "ConnectionFailed", "NotInstalled", "NotFound", "VectorizerNotFound",
    "ModelNotFound", "AlreadyExists", "InvalidArgument", "PermissionDenied", "ModelServerError",
    "DatabaseError", "NotInSync", "from_psycopg",
]


class PgweaveError(Exception):
    """Base of every pgweave client error: message, hint, detail and SQLSTATE."""

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None,
                 sqlstate: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail
        self.sqlstate = sqlstate

    def __str__(self) -> str:
        lines = [self.message]
        if self.detail:
            lines.append(f"detail: {self.detail}")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class ConnectionFailed(PgweaveError):
    """The database cannot be reached, refused the login, or the connection broke."""


class NotInstalled(PgweaveError):
    """The ``ai`` schema, or a part of it this client needs, is not installed in the database."""


class NotFound(PgweaveError):
    """Something named does not exist (SQLSTATE 42704, or 42P01 for a table)."""


class VectorizerNotFound(NotFound):
    """No vectorizer has that name or id; the hint lists the existing ones."""


class ModelNotFound(NotFound):
    """The model server does not have that model; the hint lists the ones it has."""


class AlreadyExists(PgweaveError):
    """A vectorizer, or the table or view it would create, already exists (42710, 42P07)."""


class InvalidArgument(PgweaveError):
    """A value or configuration was refused (SQLSTATE class 22, unknown columns, no key...)."""


class PermissionDenied(PgweaveError):
    """The role lacks a privilege, or a model server refused its credentials (42501, 28xxx)."""


class ModelServerError(PgweaveError):
    """The model server could not be reached, timed out, or failed (08xxx, 58xxx, 53400)."""


class DatabaseError(PgweaveError):
    """Any other error raised by the database."""


class NotInSync(PgweaveError, TimeoutError):
    """A vectorizer still had pending items when the wait timed out; ``status`` is the last seen."""

    def __init__(self, message: str, status=None):
        super().__init__(message, hint="let the worker or the pg_cron job run longer, "
                         "or look at `pgweave status` and `pgweave errors`")
        self.status = status


# SQLSTATE (exact code first, then its two-letter class) → error class.
_BY_CODE: dict[str, type[PgweaveError]] = {
    "3F000": NotInstalled,          # schema "ai" does not exist
    "42710": AlreadyExists, "42P07": AlreadyExists,
    "42501": PermissionDenied,
    "42703": InvalidArgument,       # undefined column
    "42701": InvalidArgument,       # key column named like a store column
    "42804": InvalidArgument,       # datatype mismatch (dimensions)
    "42809": InvalidArgument,       # not a table
    "42P16": InvalidArgument,       # no primary key
    "53400": ModelServerError,      # the model server rate-limits
}
_BY_CLASS: dict[str, type[PgweaveError]] = {
    "08": ModelServerError,         # raised by the in-database model calls, never by Postgres itself
    "22": InvalidArgument,
    "28": PermissionDenied,
    "58": ModelServerError,
}

# "relation "ai.x" does not exist" / "function ai.x(...) does not exist": an older or no install.
_MISSING_AI_OBJECT = re.compile(r'^(relation|function) "?ai\.')


# PL/Python puts the exception's type before the message of every error that leaves a Python
# function ("plpy.Error: model 'x' is not available"); the message is what users need.
_PLPYTHON_PREFIX = re.compile(r"^(plpy\.\w+|spiexceptions\.\w+): ")


def _class_for(sqlstate: str | None, message: str) -> type[PgweaveError]:
    if sqlstate is None:
        return DatabaseError
    if sqlstate == "42704":
        if message.startswith("vectorizer "):
            return VectorizerNotFound
        if message.startswith("model "):
            return ModelNotFound
        return NotFound
    if sqlstate in ("42P01", "42883") and _MISSING_AI_OBJECT.match(message):
        return NotInstalled
    if sqlstate == "42P01":
        return NotFound             # e.g. create_vectorizer('no_such_table')
    if sqlstate == "57014" and "model server" in message:
        return ModelServerError     # the HTTP timeout; a statement_timeout stays a DatabaseError
    if sqlstate.startswith("57P"):
        return ConnectionFailed     # server shutting down, or the backend was terminated
    return _BY_CODE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2]) or DatabaseError


def from_psycopg(exc: psycopg.Error) -> PgweaveError:
    """The pgweave error for a psycopg error, keeping the server's message, detail and hint."""
    diag = exc.diag
    sqlstate = exc.sqlstate
    message = _PLPYTHON_PREFIX.sub("", (diag.message_primary or str(exc)).strip())
    if sqlstate is None and isinstance(exc, psycopg.OperationalError):
        # Raised by libpq on our side: cannot connect, bad password, connection lost.
        return ConnectionFailed(
            message, sqlstate=None,
            hint="pass a DSN (postgresql://user@host:5432/db) with --dsn, or set PGWEAVE_DSN "
                 "or DATABASE_URL")
    cls = _class_for(sqlstate, message)
    hint = diag.message_hint
    if cls is NotInstalled and not hint:
        hint = "install or upgrade pgweave: `pgweave install DSN`"
    return cls(message, hint=hint, detail=diag.message_detail, sqlstate=sqlstate)
