"""Helpers for pgweave's own alembic revisions."""

from __future__ import annotations

from .resources import resource_dir


def run_sql_file(op, relative_path: str) -> None:
    """Execute one file of ``sql/`` (e.g. ``catalog/0001_foundation.sql``) in the migration."""
    sql = resource_dir("sql").joinpath(relative_path).read_text()
    with op.get_bind().connection.driver_connection.cursor() as cursor:
        cursor.execute(sql)


def drop_code(op) -> None:
    """Drop what every install re-applies (views, routines and, with them, the event triggers), before a
    downgrade changes the tables under them; the next upgrade to head writes them again."""
    op.execute("""
        DO $$
        DECLARE r record;
        BEGIN
            IF to_regprocedure('ai.drop_vectorizer(integer,boolean)') IS NOT NULL
               AND to_regclass('ai.vectorizer') IS NOT NULL THEN
                FOR r IN SELECT id FROM ai.vectorizer ORDER BY id DESC LOOP   -- generations first
                    PERFORM ai.drop_vectorizer(r.id, false);
                END LOOP;
            END IF;
            DROP EVENT TRIGGER IF EXISTS pgweave_on_sql_drop;
            FOR r IN SELECT format('DROP VIEW IF EXISTS %I.%I CASCADE', schemaname, viewname) AS ddl
                     FROM pg_views WHERE schemaname = 'ai'
            LOOP EXECUTE r.ddl; END LOOP;
            FOR r IN SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) AS ddl
                     FROM pg_proc p WHERE p.pronamespace = 'ai'::regnamespace
            LOOP EXECUTE r.ddl; END LOOP;
        END $$;
    """)


def drop_ai_objects(op) -> None:
    """Drop every object of schema ``ai`` except alembic's version table (full downgrade)."""
    drop_code(op)
    op.execute("""
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT format('DROP VIEW IF EXISTS %I.%I CASCADE', schemaname, viewname) AS ddl
                     FROM pg_views WHERE schemaname = 'ai'
            LOOP EXECUTE r.ddl; END LOOP;
            FOR r IN SELECT format('DROP TABLE IF EXISTS %I.%I CASCADE', schemaname, tablename) AS ddl
                     FROM pg_tables WHERE schemaname = 'ai' AND tablename <> 'pgweave_migration'
            LOOP EXECUTE r.ddl; END LOOP;
            FOR r IN SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) AS ddl
                     FROM pg_proc p WHERE p.pronamespace = 'ai'::regnamespace
            LOOP EXECUTE r.ddl; END LOOP;
        END $$;
    """)
