"""Replicas: a hot standby answers search, a logical-replication subscriber vectorizes what it receives.

Two throwaway clusters beside the session's: a primary (wal_level = logical, so it can also
publish) and, from it, a hot standby made with `pg_basebackup -R`; a third cluster subscribes
to the primary's table. The table owner is a non-superuser in a database that is not pg_cron's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from pgweave_testing.helpers import conn_until, execute_vectorizer, role_dsn, vec

from pgweave.install import install
from pgweave.localdb import LocalCluster

OWNER = "app_owner"
ROWS = [
    (1, "Vacuum", "VACUUM reclaims the storage occupied by dead tuples left behind by updates and deletes."),
    (2, "Listen and notify", "LISTEN registers the session as a listener on a notification channel; "
                             "NOTIFY sends an event to every listener."),
    (3, "Sourdough", "Sourdough bread rises with a starter of wild yeast and lactic acid bacteria."),
]


def _cluster(prefix: str, **settings: str) -> LocalCluster:
    """A new local cluster with extra settings, started."""
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix=prefix)))
    cluster.init()
    with (cluster.datadir / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
    cluster.start()
    return cluster


def _app_database(cluster: LocalCluster, model_server_url: str) -> str:
    """Database `app` with pgweave installed, the owner role and its schema `app` with a
    `docs` table and a vectorizer on it (created by the owner); the superuser DSN."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE app")
        conn.execute(f"ALTER DATABASE app SET ai.ollama_host = '{model_server_url}'")
        conn.execute(f"CREATE ROLE {OWNER} LOGIN")
    dsn = cluster.dsn("app")
    install(dsn, background=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SELECT ai.grant_ai_usage('{OWNER}')")
        conn.execute(f"CREATE SCHEMA app AUTHORIZATION {OWNER}")
    with psycopg.connect(role_dsn(dsn, OWNER), autocommit=True) as conn:
        conn.execute("CREATE TABLE app.docs (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL)")
        conn.execute("""SELECT ai.create_vectorizer('app.docs'::regclass,
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            chunking => ai.chunking_recursive_character_text_splitter(800, 100),
            formatting => ai.formatting_python_template('$title: $chunk'),
            scheduling => ai.scheduling_none())""")
    return dsn


@pytest.fixture(scope="module")
def primary(model_server_url) -> Iterator[tuple[LocalCluster, str]]:
    """A primary that can publish (wal_level = logical), its `app` database vectorized."""
    cluster = _cluster("pgweave-primary-", wal_level="logical")
    try:
        dsn = _app_database(cluster, model_server_url)
        with psycopg.connect(role_dsn(dsn, OWNER), autocommit=True) as conn:
            conn.cursor().executemany("INSERT INTO app.docs VALUES (%s, %s, %s)", ROWS)
        execute_vectorizer(role_dsn(dsn, OWNER), "docs_embedding")
        yield cluster, dsn
    finally:
        cluster.destroy()


def _caught_up(primary_dsn: str, standby_dsn: str) -> None:
    """Wait until the standby has replayed everything the primary has written so far (its
    insert position: LocalCluster commits asynchronously, so a commit can be past the
    position already written out, pg_current_wal_lsn)."""
    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    with psycopg.connect(standby_dsn, autocommit=True) as conn:
        conn_until(conn, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", 60, (lsn,))


SEARCHES = {
    "semantic": "SELECT (s.hit).title FROM ai.semantic_search(NULL::app.docs_embedding, %s, k => 3) s ORDER BY s.rank",
    "hybrid": "SELECT (s.hit).title FROM ai.hybrid_search(NULL::app.docs_embedding, %s, k => 3) s ORDER BY s.rank",
    "rag_prompt": "SELECT prompt FROM ai.rag_prompt(NULL::app.docs_embedding, %s, k => 2)",
}


def test_a_hot_standby_answers_every_search_the_primary_answers(primary, tmp_path):
    cluster, dsn = primary
    standby = cluster.standby(Path(tempfile.mkdtemp(prefix="pgweave-standby-")))
    try:
        standby_dsn = standby.dsn("app")
        _caught_up(dsn, standby_dsn)
        question = "how do I reclaim disk space?"  # never asked before: not in the query cache
        with psycopg.connect(role_dsn(standby_dsn, OWNER), autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            cached_before = conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] \
                if conn.execute("SELECT has_table_privilege('ai._query_embedding_cache', 'SELECT')").fetchone()[0] \
                else None
            on_standby = {name: [r[0] for r in conn.execute(sql, (question,)).fetchall()]
                          for name, sql in SEARCHES.items()}
            again = [r[0] for r in conn.execute(SEARCHES["semantic"], (question,)).fetchall()]
        assert on_standby["semantic"][0] == "Vacuum"
        assert again == on_standby["semantic"]  # the uncached query works twice (nothing was written)
        assert on_standby["hybrid"][0] == "Vacuum"
        assert "VACUUM reclaims the storage" in on_standby["rag_prompt"][0]
        with psycopg.connect(role_dsn(dsn, OWNER), autocommit=True) as conn:
            on_primary = {name: [r[0] for r in conn.execute(sql, (question,)).fetchall()]
                          for name, sql in SEARCHES.items()}
        assert on_primary == on_standby
        # The primary cached the query and built the full-text index; the standby receives both.
        _caught_up(dsn, standby_dsn)
        with psycopg.connect(role_dsn(standby_dsn, OWNER), autocommit=True) as conn:
            assert [r[0] for r in conn.execute(SEARCHES["hybrid"], (question,)).fetchall()] == on_primary["hybrid"]
        with psycopg.connect(standby_dsn, autocommit=True) as conn:  # the superuser sees the cache
            assert conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] >= 1
        assert cached_before in (None, 0)
    finally:
        standby.destroy()


def test_rows_arriving_by_logical_replication_are_vectorized_on_the_subscriber(primary, model_server_url):
    cluster, dsn = primary
    subscriber = _cluster("pgweave-subscriber-")
    try:
        sub_dsn = _app_database(subscriber, model_server_url)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE PUBLICATION docs_pub FOR TABLE app.docs")
        with psycopg.connect(sub_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SUBSCRIPTION docs_sub CONNECTION 'host=127.0.0.1 port={cluster.port} "
                         f"dbname=app user={cluster.user}' PUBLICATION docs_pub")
            conn_until(conn, "SELECT count(*) = 3 FROM app.docs", 60)  # the initial copy
        with psycopg.connect(role_dsn(dsn, OWNER), autocommit=True) as conn:  # then changes stream in
            conn.execute("INSERT INTO app.docs VALUES (4, 'Cats', 'Cats purr when they are content.')")
            conn.execute("UPDATE app.docs SET body = body || ' It also updates statistics.' WHERE id = 1")
            conn.execute("DELETE FROM app.docs WHERE id = 3")
        owner_sub = role_dsn(sub_dsn, OWNER)
        with psycopg.connect(owner_sub, autocommit=True) as conn:
            conn_until(conn, "SELECT count(*) = 3 AND bool_or(id = 4) AND bool_or(body LIKE '%statistics.')"
                             " FROM app.docs", 60)
            assert conn.execute("SELECT ai.vectorizer_queue_pending('docs_embedding', exact => true)"
                                ).fetchone()[0] > 0  # the subscriber's own triggers queued them
        execute_vectorizer(owner_sub, "docs_embedding")
        execute_vectorizer(role_dsn(dsn, OWNER), "docs_embedding")
        store = "SELECT id, chunk, embedding::text FROM app.docs_embedding_store ORDER BY id, chunk_seq"
        with psycopg.connect(owner_sub) as sub, psycopg.connect(role_dsn(dsn, OWNER)) as pub:
            on_subscriber, on_publisher = sub.execute(store).fetchall(), pub.execute(store).fetchall()
        assert [r[0] for r in on_subscriber] == [1, 2, 4]
        assert [r[:2] for r in on_subscriber] == [r[:2] for r in on_publisher]  # the same chunks
        for (_, _, mine), (_, _, theirs) in zip(on_subscriber, on_publisher):  # embedded on each side
            assert float(vec(mine) @ vec(theirs)) > 0.999  # (a batch's padding moves the last digits)
    finally:
        with psycopg.connect(subscriber.dsn("app"), autocommit=True) as conn:
            conn.execute("DROP SUBSCRIPTION IF EXISTS docs_sub")
        subscriber.destroy()
