"""Background sync in any database, for a table owner who is not a superuser, at any number
of vectorizers: one scheduler per database, run by pg_cron from pg_cron's own database."""

from __future__ import annotations

import psycopg
import pytest

from pgweave_testing.helpers import APP_OWNER, conn_until, role_dsn

VECTORIZERS = 20


def _count_chunks_sql(n: int, expected: int) -> str:
    return " AND ".join(f"(SELECT count(*) FROM app.bg_{i}_embedding) = {expected}" for i in range(n))


def test_install_schedules_the_scheduler_in_pg_crons_database(background_db, pg_server):
    with psycopg.connect(background_db) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        cron_db, jobs, backends = conn.execute(
            "SELECT cron_database, job_names, backends FROM ai._scheduler").fetchone()
    assert cron_db != database, "the test database must not be pg_cron's own"
    with psycopg.connect(psycopg.conninfo.make_conninfo(pg_server, dbname=cron_db)) as cron:
        scheduled = cron.execute("SELECT jobname, command FROM cron.job WHERE database = %s ORDER BY jobname",
                                 (database,)).fetchall()
    assert scheduled == [(name, f"CALL ai._scheduler({slot})") for slot, name in enumerate(jobs, start=1)]
    assert len(scheduled) == backends == 2


def test_an_owner_gets_background_sync_for_twenty_vectorizers_on_two_backends(background_db):
    owner = role_dsn(background_db, APP_OWNER)
    with psycopg.connect(owner, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
        for i in range(VECTORIZERS):
            conn.execute(f"CREATE TABLE app.bg_{i} (id int PRIMARY KEY, body text)")
            conn.execute(f"INSERT INTO app.bg_{i} VALUES (1, 'existing row of table {i}')")
            conn.execute(f"""SELECT ai.create_vectorizer('app.bg_{i}'::regclass, loading => ai.loading_column('body'),
                             embedding => ai.embedding_ollama('all-minilm', 384))""")
        # pg_cron starts the scheduler at the next minute; then it serves all twenty.
        conn_until(conn, "SELECT " + _count_chunks_sql(VECTORIZERS, 1), 150)
        for i in range(VECTORIZERS):
            conn.execute(f"INSERT INTO app.bg_{i} VALUES (2, 'a new row of table {i}')")
        conn_until(conn, "SELECT " + _count_chunks_sql(VECTORIZERS, 2), 150)
        mine = "FROM ai.vectorizer_status WHERE name ~ '^bg_[0-9]+_embedding$'"
        assert {r[0] for r in conn.execute(f"SELECT processed_by {mine}")} == {"background"}
        assert conn.execute(f"SELECT count(*) {mine} AND last_run_by = 'background'").fetchone()[0] == VECTORIZERS
    with psycopg.connect(background_db) as conn:
        backends = conn.execute("""SELECT count(*) FROM pg_stat_activity
                                   WHERE datname = current_database() AND query LIKE 'CALL ai._scheduler(%%'""").fetchone()[0]
    assert 1 <= backends <= 2


def test_a_disabled_schedule_is_skipped_and_the_others_go_on(background_db):
    owner = role_dsn(background_db, APP_OWNER)
    with psycopg.connect(owner, autocommit=True) as conn:
        for name in ("paused", "running"):
            conn.execute(f"CREATE TABLE app.{name} (id int PRIMARY KEY, body text)")
            conn.execute(f"""SELECT ai.create_vectorizer('app.{name}'::regclass, loading => ai.loading_column('body'),
                             embedding => ai.embedding_ollama('all-minilm', 384))""")
        conn.execute("SELECT ai.disable_vectorizer_schedule('paused_embedding')")
        assert conn.execute("SELECT schedule, disabled FROM ai.vectorizer_status WHERE name = 'paused_embedding'"
                            ).fetchone() == ("disabled", True)
        assert conn.execute("SELECT processed_by FROM ai.vectorizer_status WHERE name = 'paused_embedding'"
                            ).fetchone()[0].startswith("nobody: its schedule is disabled")
        conn.execute("INSERT INTO app.paused VALUES (1, 'waits while paused')")
        conn.execute("INSERT INTO app.running VALUES (1, 'written after the paused one')")
        # The scheduler serves every enabled vectorizer each round: once the later write is
        # embedded, a round has passed the paused one by.
        conn_until(conn, "SELECT count(*) = 1 FROM app.running_embedding", 150)
        conn_until(conn, "SELECT last_run_at IS NOT NULL FROM ai.vectorizer_status WHERE name = 'running_embedding'", 10)
        assert conn.execute("SELECT count(*) FROM app.paused_embedding").fetchone()[0] == 0
        assert conn.execute("SELECT ai.vectorizer_queue_pending('paused_embedding')").fetchone()[0] == 1
        conn.execute("SELECT ai.enable_vectorizer_schedule('paused_embedding')")
        conn_until(conn, "SELECT count(*) = 1 FROM app.paused_embedding", 150)


def test_a_database_without_background_processing_says_so_and_how_to_fix_it(db):
    notices: list[str] = []
    with psycopg.connect(db, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
        conn.execute("""SELECT ai.create_vectorizer('t'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384))""")
        by = conn.execute("SELECT processed_by FROM ai.vectorizer_status").fetchone()[0]
    assert by.startswith("nobody: background processing was never arranged") and "pgweave install" in by
    assert any("nothing will process it" in n and "pgweave worker" in n for n in notices), notices


def test_scheduling_none_without_a_worker_is_flagged(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
        conn.execute("""SELECT ai.create_vectorizer('t'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none())""")
        assert conn.execute("SELECT processed_by FROM ai.vectorizer_status").fetchone()[0].startswith(
            "nobody: it has scheduling_none and no pgweave worker was seen")
        conn.execute("SELECT ai._worker_heartbeat('host:123', NULL)")
        assert conn.execute("SELECT processed_by FROM ai.vectorizer_status").fetchone()[0].startswith(
            "worker host:123")


def _cron_jobs(pg_server: str, database: str) -> list[str]:
    with psycopg.connect(pg_server) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
    with psycopg.connect(psycopg.conninfo.make_conninfo(pg_server, dbname=cron_db)) as cron:
        return [r[0] for r in cron.execute("SELECT jobname FROM cron.job WHERE database = %s", (database,))]


@pytest.mark.parametrize("drop_stores", [False, True])
def test_uninstall_leaves_no_job_trigger_or_schema_behind(empty_db, pg_server, drop_stores):
    from pgweave.install import install, uninstall

    install(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("""SELECT ai.create_vectorizer('notes'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), enqueue_existing => false)""")
    assert len(_cron_jobs(pg_server, database)) == 2
    summary = uninstall(empty_db, drop_stores=drop_stores)
    assert "1 vectorizer(s) removed" in summary and "2 pg_cron job(s)" in summary
    assert _cron_jobs(pg_server, database) == []
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert conn.execute("SELECT to_regnamespace('ai')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pgweave%%'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'notes'::regclass").fetchone()[0] == 0
        kept = conn.execute("SELECT to_regclass('notes_embedding_store') IS NOT NULL").fetchone()[0]
        assert kept is (not drop_stores)
        conn.execute("INSERT INTO notes VALUES (1, 'writes to the table go on')")
        if drop_stores:
            conn.execute("DROP EXTENSION vector")
