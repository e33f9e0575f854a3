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


def install(dsn: str, revision: str = "head", background: bool = True) -> str:
    """Upgrade the database at ``dsn`` to ``revision``; return the installed version.

    At head, ``background`` also arranges background processing (``arrange_background``);
    pass False for a template database, which must have no scheduler connected to it.

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
        if revision == "head" and background:
            arrange_background(dsn)
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


SCHEDULER_JOB = "pgweave_scheduler_{database}_{slot}"


def _cron_database(conn: psycopg.Connection) -> str | None:
    """The database pg_cron runs in (cron.database_name), or None without pg_cron preloaded."""
    row = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()
    return row[0] or None


def _cron_dsn(conn: psycopg.Connection, dsn: str, cron_db: str) -> str:
    """The same server and role as ``conn``, connected to the cron database."""
    password = conn.pgconn.password
    extra = {"password": password.decode()} if password else {}
    return psycopg.conninfo.make_conninfo(dsn, dbname=cron_db, **extra)


def arrange_background(dsn: str, backends: int | None = None) -> str:
    """Schedule this database's background scheduler with pg_cron, wherever pg_cron lives.

    ``backends`` scheduler backends (default: what ai._scheduler says, else 2) each run
    ``CALL ai._scheduler(slot)`` every minute in this database, via pg_cron >= 1.4's
    ``cron.schedule_in_database``. Needs a superuser. Records the outcome, or why it could
    not be arranged, in ai._scheduler; returns a one-line summary.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        row = conn.execute("SELECT backends FROM ai._scheduler").fetchone()
        backends = backends or (row[0] if row else 2)
        cron_db = _cron_database(conn)
        if cron_db is None:
            problem = ("pg_cron is not loaded on this server; add pg_cron to shared_preload_libraries, "
                       "restart, and run `pgweave install` again, or run `pgweave worker DSN`")
            conn.execute("SELECT ai._record_scheduler(NULL, '{}', %s, %s)", (backends, problem))
            return f"background processing: not arranged ({problem})"
        names = [SCHEDULER_JOB.format(database=database, slot=slot) for slot in range(1, backends + 1)]
        try:
            with psycopg.connect(_cron_dsn(conn, dsn, cron_db), autocommit=True) as cron:
                cron.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
                _unschedule(cron, database)
                for slot, name in enumerate(names, start=1):
                    cron.execute("SELECT cron.schedule_in_database(%s, '* * * * *', %s, %s)",
                                 (name, f"CALL ai._scheduler({slot})", database))
        except psycopg.Error as exc:
            problem = (f"could not schedule the scheduler in pg_cron's database {cron_db!r}: "
                       f"{str(exc).strip().splitlines()[0]}; run `pgweave install` as a superuser, "
                       "or run `pgweave worker DSN`")
            conn.execute("SELECT ai._record_scheduler(%s, '{}', %s, %s)", (cron_db, backends, problem))
            return f"background processing: not arranged ({problem})"
        conn.execute("SELECT ai._record_scheduler(%s, %s, %s, NULL)", (cron_db, names, backends))
        return (f"background processing: {backends} scheduler backend(s) in pg_cron "
                f"(database {cron_db!r}) serve every vectorizer of {database!r}")


def _unschedule(cron: psycopg.Connection, database: str) -> int:
    """Remove this database's scheduler jobs from pg_cron; return how many."""
    rows = cron.execute(
        "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE %s AND database = %s",
        (SCHEDULER_JOB.format(database=database.replace("_", r"\_"), slot="%"), database)).fetchall()
    return len(rows)


def remove_background(dsn: str) -> int:
    """Unschedule this database's scheduler jobs (and jobs of older versions); return how many."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        cron_db = _cron_database(conn)
        if cron_db is None:
            return 0
        with psycopg.connect(_cron_dsn(conn, dsn, cron_db), autocommit=True) as cron:
            if not cron.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone():
                return 0
            removed = _unschedule(cron, database)
            removed += len(cron.execute(
                "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'pgweave\\_vectorizer\\_%%' "
                "AND database = %s", (database,)).fetchall())
            return removed


def uninstall(dsn: str, drop_stores: bool = False) -> str:
    """Remove pgweave from a database: its pg_cron jobs (also in the cron database), every
    vectorizer's triggers, functions and queues, the event triggers and schema ai. Stores and
    views stay (they are the user's data) unless ``drop_stores``. Returns a summary."""
    try:
        psycopg.connect(dsn).close()
    except psycopg.Error as exc:
        raise connection_failed(exc, dsn) from exc
    removed_jobs = remove_background(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Scheduler runs already started stay resident for up to a minute: end them now.
        conn.execute("""SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
                        WHERE datname = current_database() AND query LIKE 'CALL ai.\\_scheduler(%'""")
        has_ai = conn.execute("SELECT to_regclass('ai.vectorizer') IS NOT NULL").fetchone()[0]
        # Newest first: a generation being built (ai.alter_vectorizer) goes before the live one,
        # whose drop would take it along.
        vectorizers = conn.execute("SELECT id FROM ai.vectorizer ORDER BY id DESC").fetchall() if has_ai else []
        with conn.transaction():
            if has_ai:   # a scheduler run pg_cron starts now waits, then finds nothing
                conn.execute("LOCK TABLE ai._scheduler, ai.vectorizer IN ACCESS EXCLUSIVE MODE")
            for (vid,) in vectorizers:
                conn.execute("SELECT ai.drop_vectorizer(%s, drop_all => %s)", (vid, drop_stores))
            conn.execute("DROP EVENT TRIGGER IF EXISTS pgweave_on_alter_table")
            conn.execute("DROP EVENT TRIGGER IF EXISTS pgweave_on_sql_drop")
            conn.execute("DROP SCHEMA IF EXISTS ai CASCADE")
    kept = "dropped" if drop_stores else "kept (drop them yourself, or pass --drop-stores)"
    return (f"uninstalled: {len(vectorizers)} vectorizer(s) removed, {removed_jobs} pg_cron job(s) "
            f"unscheduled, schema ai dropped; stores and views {kept}")
