"""Install or upgrade the ``ai`` schema in a database, through alembic."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg
import sqlalchemy
from alembic import command
from alembic.config import Config
from sqlalchemy.pool import NullPool

from .errors import PermissionDenied, PgweaveError, connection_failed, from_psycopg
from .resources import resource_dir

VERSION_TABLE = "pgweave_migration"


def engine_for(dsn: str) -> sqlalchemy.Engine:
    """An SQLAlchemy engine over psycopg for any libpq DSN (URI or key=value)."""
    return sqlalchemy.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool
    )


def alembic_config(connection: sqlalchemy.Connection | None = None) -> Config:
    """An alembic Config for pgweave's own migrations, bound to ``connection``."""
    migrations = resource_dir("migrations")
    config = Config(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _connected(dsn: str) -> Iterator[sqlalchemy.Connection]:
    """A connection to ``dsn`` in one transaction, its engine disposed after."""
    engine = engine_for(dsn)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def install(dsn: str, revision: str = "head") -> str:
    """Upgrade the database at ``dsn`` to ``revision``; return the installed version.

    Raises :class:`pgweave.errors.PgweaveError` subclasses: ConnectionFailed with the cause's
    fix, PermissionDenied with what a non-superuser should do, and the database's own errors.
    """
    try:
        psycopg.connect(dsn).close()      # a connection failure says its cause, not alembic's
    except psycopg.Error as exc:
        raise connection_failed(exc, dsn) from exc
    try:
        with _connected(dsn) as connection:
            command.upgrade(alembic_config(connection), revision)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT to_regclass('ai.pgweave_install') IS NOT NULL").fetchone()
            row = conn.execute("SELECT version FROM ai.pgweave_install").fetchone() if row[0] else None
    except (sqlalchemy.exc.DBAPIError, psycopg.Error) as exc:
        raise _install_error(getattr(exc, "orig", None) or exc) from exc
    return row[0] if row else f"revision {revision} (code not installed below head)"


def _install_error(exc: BaseException) -> PgweaveError:
    """The client error for a failed install; a refused privilege says who can install."""
    if not isinstance(exc, psycopg.Error):
        return PgweaveError(f"install failed: {exc}")
    error = from_psycopg(exc)
    if isinstance(error, PermissionDenied):
        return PermissionDenied(
            f"install failed: {error.message}", sqlstate=error.sqlstate, detail=error.detail,
            hint="installing or upgrading pgweave creates the extensions vector and plpython3u "
                 "(untrusted: superuser only) and owns the ai schema: run `pgweave install` as a "
                 "superuser (e.g. postgres) once; then other roles get access with "
                 "SELECT ai.grant_ai_usage('role') and need no install")
    return error


def current_revision(dsn: str) -> str | None:
    """The alembic revision the database is at, or None before the first install."""
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"ai.{VERSION_TABLE}",)).fetchone()[0]
        if exists is None:
            return None
        row = conn.execute(f"SELECT version_num FROM ai.{VERSION_TABLE}").fetchone()
        return row[0] if row else None
