"""Faults of the model server and of PostgreSQL: nothing lost, nothing stale, at quiescence."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pgweave.install import install
from pgweave.localdb import LocalCluster
from pgweave.services import start_model_server

from pgweave_testing.checker import check_exact
from pgweave_testing.fault_proxy import FaultProxy

TEXT = ("Row {i} talks about replication slots and write-ahead logging.\n\n"
        "It then covers vacuum, visibility maps and index-only scans for row {i}.")


def _vectorizer(dsn: str, host: str, rows: int, batch_size: int = 10) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, other int DEFAULT 0)")
        conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384, base_url => %s),
            chunking => ai.chunking_recursive_character_text_splitter(100, 0),
            scheduling => ai.scheduling_none(), indexing => ai.indexing_none(),
            processing => ai.processing_default(batch_size => %s, max_attempts => 50,
                                                retry_base_seconds => 0))""", (host, batch_size))
        for i in range(rows):
            conn.execute("INSERT INTO docs (id, body) VALUES (%s, %s)", (i, TEXT.format(i=i)))


def _call(dsn: str, **settings) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(f"SET ai.{name} = '{value}'")
        conn.execute("CALL ai.execute_vectorizer('docs_embedding')")


def _errors(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT message FROM ai.vectorizer_errors ORDER BY id")]


@pytest.fixture
def proxy(model_server_url):
    fp = FaultProxy(model_server_url)
    yield fp
    fp.close()


@pytest.mark.parametrize("mode,message", [
    ("500", "failed with 500"),
    ("429", "rate limiting"),
    ("hang", "did not answer within"),
    ("malformed", "not JSON"),
    ("wrong_dims", "returned 192 dimensions"),
])
def test_model_server_faults_lose_nothing(db, proxy, st_model, mode, message):
    _vectorizer(db, proxy.url, rows=12)
    proxy.mode, proxy.hang_seconds = mode, 3
    start = time.monotonic()
    _call(db, http_retries=1, http_timeout=1 if mode == "hang" else 60)  # a loaded machine is slow
    errors = _errors(db)
    assert errors and message in errors[0], errors
    with psycopg.connect(db) as conn:
        queued = conn.execute("SELECT count(*) FROM ai._vectorizer_q_1").fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0]
    assert queued == 12 and stored == 0  # every item kept, nothing half-written
    proxy.mode = "pass"
    _call(db)
    figures = check_exact(db, st_model)
    print(f"\n[{mode}] requests={proxy.requests} faults={proxy.faults} errors={len(errors)} "
          f"items={figures['rows']} chunks={figures['chunks']} converged in {time.monotonic() - start:.1f}s")


def test_backend_terminated_mid_batch_loses_nothing(db, proxy, st_model):
    _vectorizer(db, proxy.url, rows=20)
    proxy.mode, proxy.hang_seconds = "slow", 3
    failure: list[BaseException] = []

    def run():
        try:
            _call(db)
        except psycopg.Error as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert proxy.in_flight.wait(30), "the batch never called the model"
    with psycopg.connect(db, autocommit=True) as conn:
        killed = conn.execute("""SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                 WHERE query LIKE 'CALL ai.execute_vectorizer%%' AND pid <> pg_backend_pid()""").fetchone()[0]
    thread.join(60)
    assert killed == 1 and failure
    proxy.mode = "pass"
    _call(db)
    figures = check_exact(db, st_model)
    print(f"\n[terminated] items={figures['rows']} chunks={figures['chunks']} after one terminated batch")


def test_model_server_killed_mid_backfill_and_restarted(db, st_model, tmp_path):
    server = start_model_server(tmp_path / "victim.log")
    port = int(server.url.rsplit(":", 1)[1])
    _vectorizer(db, server.url, rows=60, batch_size=5)
    runner = threading.Thread(target=_call, args=(db,), kwargs={"http_retries": 0})
    runner.start()
    with psycopg.connect(db) as conn:
        while conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0] == 0:
            time.sleep(0.05)
    server.stop()  # killed mid-backfill
    runner.join(120)
    with psycopg.connect(db) as conn:
        done, left = conn.execute("""SELECT (SELECT count(DISTINCT id) FROM docs_embedding_store),
                                            (SELECT count(*) FROM ai._vectorizer_q_1)""").fetchone()
    assert 0 < done < 60 and left == 60 - done
    assert any("cannot reach the model server" in e for e in _errors(db))
    start = time.monotonic()
    with start_model_server(tmp_path / "restarted.log", port=port):
        _call(db)
    figures = check_exact(db, st_model)
    print(f"\n[killed server] done before kill={done} queued={left} items={figures['rows']} "
          f"converged {time.monotonic() - start:.1f}s after restart")


def test_postgres_immediate_stop_mid_batch(model_server_url, st_model):
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pgweave-crash-")))
    cluster.start()
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE crash")
            # The throwaway cluster trades durability for speed; this test needs commits to survive.
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
        dsn = cluster.dsn("crash")
        install(dsn)
        proxy = FaultProxy(model_server_url)
        _vectorizer(dsn, proxy.url, rows=20)
        proxy.mode, proxy.hang_seconds = "slow", 3
        thread = threading.Thread(target=lambda: pytest.raises(psycopg.Error, _call, dsn))
        thread.start()
        assert proxy.in_flight.wait(30)
        cluster.stop(mode="immediate")
        thread.join(60)
        proxy.mode = "pass"
        cluster.start()
        _call(dsn)
        figures = check_exact(dsn, st_model)
        assert figures["rows"] == 20
        proxy.close()
        print(f"\n[immediate stop] items={figures['rows']} chunks={figures['chunks']} after crash recovery")
    finally:
        cluster.destroy()
