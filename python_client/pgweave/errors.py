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
    "DatabaseError", "NotInSync", "NotProcessed", "from_psycopg", "connection_failed",
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
    """The database cannot be reached, refused the login, or the connection broke.

    ``cause`` names why, for scripts: 'malformed-dsn', 'server-down', 'unknown-host',
    'unknown-database', 'unknown-role', 'auth-failed', 'lost' or 'other'.
    """

    def __init__(self, message: str, *, cause: str = "other", **kwargs):
        super().__init__(message, **kwargs)
        self.cause = cause


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


class NotProcessed(PgweaveError):
    """Items wait but nothing processes the vectorizer's queue (its ``processed_by`` is 'nobody')."""

    def __init__(self, status):
        reason = status.unprocessed_because
        super().__init__(
            f"vectorizer {status.name!r} has {status.pending_items} pending item(s) and nothing "
            f"processes its queue: {reason}",
            hint=f"start `pgweave worker -v {status.name}`, enable its schedule "
                 f"(SELECT ai.enable_vectorizer_schedule('{status.name}')), or drain it once with "
                 f"CALL ai.execute_vectorizer('{status.name}')")
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
# PostgreSQL sets no diagnostic field for an undefined relation or function; its message is all
# there is.
_MISSING_AI_OBJECT = re.compile(r'^(relation|function) "?ai\.')


# PL/Python puts the exception's type before the message of every error that leaves a Python
# function ("plpy.Error: model 'x' is not available"); the message is what users need.
_PLPYTHON_PREFIX = re.compile(r"^(plpy\.\w+|spiexceptions\.\w+): ")

# The object a 42704 is about, from its diagnostic fields: the catalog table it is missing from
# (ai._vectorizer_id raises with SCHEMA 'ai', TABLE 'vectorizer'), or the config field it names
# (a model the server lacks: COLUMN 'model').
_NOT_FOUND_BY_FIELD: dict[tuple[str, str], type[PgweaveError]] = {
    ("table_name", "vectorizer"): VectorizerNotFound,
    ("column_name", "model"): ModelNotFound,
}


def _not_found_class(diag: "psycopg.errors.Diagnostic") -> type[PgweaveError]:
    """The NotFound subclass for a 42704, from its diagnostic fields."""
    for (attribute, value), cls in _NOT_FOUND_BY_FIELD.items():
        if getattr(diag, attribute, None) == value:
            return cls
    return NotFound


def _class_for(sqlstate: str | None, diag: "psycopg.errors.Diagnostic", message: str) -> type[PgweaveError]:
    """The error class for a server error: its SQLSTATE, refined by its diagnostic fields."""
    if sqlstate is None:
        return DatabaseError
    if sqlstate == "42704":
        return _not_found_class(diag)
    if sqlstate in ("42P01", "42883") and _MISSING_AI_OBJECT.match(message):
        return NotInstalled
    if sqlstate == "42P01":
        return NotFound             # e.g. create_vectorizer('no_such_table')
    if sqlstate == "57014" and not message.startswith("canceling statement due to"):
        return ModelServerError     # raised by pgweave's code: the model server's timeout; a
                                    # statement_timeout or a cancel (PostgreSQL's own message,
                                    # also when re-raised by a clean-error wrapper) stays a DatabaseError
    if sqlstate.startswith("57P"):
        return ConnectionFailed     # server shutting down, or the backend was terminated
    return _BY_CODE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2]) or DatabaseError


def from_psycopg(exc: psycopg.Error) -> PgweaveError:
    """The pgweave error for a psycopg error, keeping the server's message, detail and hint."""
    diag = exc.diag
    sqlstate = exc.sqlstate
    message = _PLPYTHON_PREFIX.sub("", (diag.message_primary or str(exc)).strip())
    if sqlstate is None and isinstance(exc, psycopg.OperationalError):
        # Raised by libpq on our side: the connection broke.
        return ConnectionFailed(message, cause="lost",
                                hint="the server closed the connection or is gone: check that it "
                                     "runs (`pg_isready`), then run the command again")
    cls = _class_for(sqlstate, diag, message)
    hint = diag.message_hint
    if sqlstate == "2D000" and "execute_vectorizer" in (diag.context or ""):
        message = "ai.execute_vectorizer commits after every batch and cannot run inside a transaction block"
        hint = hint or "CALL it outside BEGIN ... COMMIT (autocommit)"
    if cls is NotInstalled and not hint:
        hint = "install or upgrade pgweave: `pgweave install DSN`"
    return cls(message, hint=hint, detail=diag.message_detail, sqlstate=sqlstate)


# Why a connection could not be made. libpq reports these with no SQLSTATE, so its own words are
# what tell the causes apart; each cause gets the fix for it.
_CONNECT_CAUSES = (
    (re.compile(r'database "([^"]+)" does not exist'), "unknown-database",
     "the server has no database {0!r}: create it (createdb {0}) or name an existing one in the DSN "
     "(list them with psql -l)"),
    (re.compile(r'role "([^"]+)" does not exist'), "unknown-role",
     "the server has no role {0!r}: connect as an existing role (the user in the DSN, or PGUSER), "
     "or have an administrator run CREATE ROLE {0} LOGIN"),
    (re.compile(r'(?:password|peer|ident|scram|md5|certificate) authentication failed for user "([^"]+)"'
                r'|no password supplied|(pg_hba\.conf rejects)'), "auth-failed",
     "the server refused the login: check the password (in the DSN, PGPASSWORD or ~/.pgpass) "
     "and the server's pg_hba.conf"),
    (re.compile(r"failed to resolve host '([^']+)'|could not translate host name \"([^\"]+)\""),
     "unknown-host", "the host name {0!r} does not resolve: check the host in the DSN"),
    (re.compile(r'Connection refused|No such file or directory|timeout expired|Is the server running'),
     "server-down",
     "no PostgreSQL answers there: start the server (`pgweave db start` for the project-local one), "
     "or check host and port in the DSN"),
    (re.compile(r'invalid (?:integer )?value|missing "=" after|invalid connection option|'
                r'invalid URI|unterminated quoted string|invalid percent-encoded'), "malformed-dsn",
     "write the DSN as postgresql://user@host:5432/dbname or 'host=… port=… dbname=… user=…'"),
)


def connection_failed(exc: psycopg.Error, dsn: str) -> ConnectionFailed:
    """A ConnectionFailed for a failed connect to ``dsn``, with the cause and its fix in the hint."""
    text = str(exc).strip()
    message = text.removeprefix("connection failed: ").removeprefix("connection is bad: ")
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    for pattern, cause, hint in _CONNECT_CAUSES:
        found = pattern.search(text)
        if found:
            names = [g for g in found.groups() if g] or [""]
            hint = hint.format(*names)
            if not dsn:
                hint += ("; no DSN was given, so libpq's defaults were used: pass one with --dsn "
                         "or set PGWEAVE_DSN")
            return ConnectionFailed(f"cannot connect: {message}", cause=cause, hint=hint)
    where = "" if dsn else " (no DSN was given: libpq's defaults were used)"
    return ConnectionFailed(f"cannot connect{where}: {message}", cause="other",
                            hint="pass a DSN (postgresql://user@host:5432/db) with --dsn, or set "
                                 "PGWEAVE_DSN or DATABASE_URL")
