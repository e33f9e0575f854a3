"""Alembic environment for the `ai` schema: revisions, then the re-applied code."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import text

from pgweave.install import VERSION_TABLE, arrange_background, engine_for, remove_background
from pgweave.schema import apply_code

config = context.config


def _dsn() -> str:
    """-x dsn=..., then PGWEAVE_DSN, then DATABASE_URL, then libpq defaults."""
    return (context.get_x_argument(as_dictionary=True).get("dsn")
            or os.environ.get("PGWEAVE_DSN") or os.environ.get("DATABASE_URL") or "")


def _run(connection) -> None:
    # One install at a time per database: concurrent installs would race on the catalog.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('pgweave install'))"))
    connection.execute(text("CREATE SCHEMA IF NOT EXISTS ai"))
    context.configure(connection=connection, version_table=VERSION_TABLE,
                      version_table_schema="ai", transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
        heads = set(context.get_context().get_current_heads())
        if heads and heads == set(context.script.get_heads()):
            # At head: (re)write the in-database Python and every function, one code hash.
            with connection.connection.driver_connection.cursor() as cursor:
                apply_code(cursor)


if context.is_offline_mode():
    raise SystemExit("pgweave migrations need a live database: drop --sql")

connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)   # pgweave install: it arranges background processing itself
else:
    engine = engine_for(_dsn())
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
        at_head = set(context.get_context().get_current_heads()) == set(context.script.get_heads())
        at_base = not context.get_context().get_current_heads()
    # pg_cron's jobs live in another database: arranged (or removed) after the commit.
    if at_head:
        print(arrange_background(_dsn()))
    elif at_base:
        print(f"pg_cron jobs removed: {remove_background(_dsn())}")
