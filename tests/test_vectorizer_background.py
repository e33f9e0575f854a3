"""Background by default: with pg_cron, nothing but Postgres and the model server is needed."""

from __future__ import annotations

import psycopg

from pgweave_testing.helpers import sql_until


def test_pg_cron_schedules_a_resident_job_that_keeps_the_store_in_sync(cron_db):
    with psycopg.connect(cron_db, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bg_notes CASCADE")
        conn.execute("CREATE TABLE bg_notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO bg_notes VALUES (1, 'Existing note to backfill.')")
        vid = conn.execute("""SELECT ai.create_vectorizer('bg_notes'::regclass,
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384))""").fetchone()[0]
        try:
            impl, job_active, schedule = conn.execute("""
                SELECT v.config->'scheduling'->>'implementation', j.active, s.schedule
                FROM ai.vectorizer v JOIN cron.job j ON j.jobname = 'pgweave_vectorizer_' || v.id
                JOIN ai.vectorizer_status s ON s.id = v.id WHERE v.id = %s""", (vid,)).fetchone()
            assert (impl, job_active, schedule) == ("cron", True, "cron")
            # pg_cron starts the job at the next minute; from then on it stays resident.
            sql_until(cron_db, "SELECT count(*) = 1 FROM bg_notes_embedding", "pg_cron's job backfilled the note", 150)
            conn.execute("INSERT INTO bg_notes VALUES (2, 'A new note, embedded in the background.')")
            conn.execute("UPDATE bg_notes SET body = 'The existing note, edited.' WHERE id = 1")
            sql_until(cron_db, """SELECT count(*) = 2 AND bool_and(chunk <> 'Existing note to backfill.')
                                  FROM bg_notes_embedding""", "the resident job embedded the insert and the edit", 150)
            conn.execute("SELECT ai.disable_vectorizer_schedule(%s)", (vid,))
            assert conn.execute("SELECT active FROM cron.job WHERE jobname = 'pgweave_vectorizer_' || %s",
                                (vid,)).fetchone()[0] is False
            assert conn.execute("SELECT schedule FROM ai.vectorizer_status WHERE id = %s", (vid,)).fetchone()[0] == "disabled"
            conn.execute("SELECT ai.enable_vectorizer_schedule(%s)", (vid,))
            assert conn.execute("SELECT active FROM cron.job WHERE jobname = 'pgweave_vectorizer_' || %s",
                                (vid,)).fetchone()[0] is True
        finally:
            conn.execute("SELECT ai.drop_vectorizer(%s, drop_all => true)", (vid,))
            conn.execute("DROP TABLE bg_notes")
        assert conn.execute("SELECT count(*) FROM cron.job WHERE jobname = 'pgweave_vectorizer_' || %s",
                            (vid,)).fetchone()[0] == 0


def test_scheduling_cron_without_pg_cron_says_what_to_do(db):
    with psycopg.connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
        try:
            conn.execute("""SELECT ai.create_vectorizer('t'::regclass, loading => ai.loading_column('body'),
                embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_cron())""")
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            assert "pg_cron" in exc.diag.message_primary and "pgweave worker" in exc.diag.message_hint
        else:
            raise AssertionError("scheduling_cron was accepted without pg_cron")
