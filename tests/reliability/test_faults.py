"""Faults of the model server and of PostgreSQL: nothing lost, nothing stale, at quiescence."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from pgweave.install import install
from pgweave.localdb import LocalCluster
from pgweave.services import start_model_server

from pgweave_testing.checker import check_exact
from pgweave_testing.fault_proxy import FaultProxy
from pgweave_testing.helpers import sql_until, started
from pgweave_testing.vectorizers import create_vectorizer

TEXT = ("Row {i} talks about replication slots and write-ahead logging.\n\n"
        "It then covers vacuum, visibility maps and index-only scans for row {i}.")


def _vectorizer(dsn: str, host: str, rows: int, batch_size: int = 10, max_attempts: int = 50,
                retry_base_seconds: float = 0, owner: str | None = None):
    """docs with ``rows`` rows and a vectorizer whose model server is ``host``."""
    return create_vectorizer(
        dsn, rows={i: TEXT.format(i=i) for i in range(rows)},
        model=f"ai.embedding_ollama('all-minilm', 384, base_url => '{host}')",
        processing=f"batch_size => {batch_size}, max_attempts => {max_attempts}, "
                   f"retry_base_seconds => {retry_base_seconds}", owner=owner)


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
    thread = started(_call, db, name="terminated batch")
    assert proxy.in_flight.wait(30), "the batch never called the model"
    with psycopg.connect(db, autocommit=True) as conn:
        killed = conn.execute("""SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                 WHERE query LIKE 'CALL ai.execute_vectorizer%%' AND pid <> pg_backend_pid()""").fetchone()[0]
    assert killed == 1
    assert isinstance(thread.error(60), psycopg.OperationalError)
    proxy.mode = "pass"
    _call(db)
    figures = check_exact(db, st_model)
    print(f"\n[terminated] items={figures['rows']} chunks={figures['chunks']} after one terminated batch")


def test_model_server_killed_mid_backfill_and_restarted(db, st_model, tmp_path):
    server = start_model_server(tmp_path / "victim.log")
    port = int(server.url.rsplit(":", 1)[1])
    _vectorizer(db, server.url, rows=60, batch_size=5)
    runner = started(_call, db, http_retries=0, name="backfill")
    sql_until(db, "SELECT count(*) > 0 FROM docs_embedding_store", "the backfill stored a first batch", 120)
    server.stop()  # killed mid-backfill
    runner.result(120)  # the procedure records the failures and returns
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
        thread = started(_call, dsn, name="batch at the crash")
        assert proxy.in_flight.wait(30)
        cluster.stop(mode="immediate")
        assert isinstance(thread.error(60), psycopg.OperationalError)
        proxy.mode = "pass"
        cluster.start()
        _call(dsn)
        figures = check_exact(dsn, st_model)
        assert figures["rows"] == 20
        proxy.close()
        print(f"\n[immediate stop] items={figures['rows']} chunks={figures['chunks']} after crash recovery")
    finally:
        cluster.destroy()


def _backoff(dsn: str, queue: str) -> tuple[int, float]:
    """The queued item's attempts, and how long after its last recorded error it may be retried."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"""SELECT q._attempts, extract(epoch FROM q._retry_after - e.recorded)::float8
            FROM {queue} q, (SELECT max(recorded) AS recorded FROM ai._vectorizer_errors) e""").fetchone()


def test_a_failing_item_is_retried_with_growing_backoff_then_parked(db, proxy, st_model):
    """retry_base_seconds 10, max_attempts 3, ai.http_retries 2: each call makes 1 + 2 requests;
    the item then waits 10 s, 20 s (base * 2^attempts, computed here by hand); it is not
    tried before then; after the third failed call it is parked, and retry_failed brings it back."""
    v = _vectorizer(db, proxy.url, rows=1, max_attempts=3, retry_base_seconds=10)
    proxy.mode = "500"
    embeds = lambda: len(proxy.posts("/api/embed"))  # noqa: E731

    _call(db, http_retries=2)
    assert embeds() == 3
    attempts, wait = _backoff(db, v.queue)
    assert attempts == 1 and wait == pytest.approx(10, abs=1)
    _call(db, http_retries=2)  # not due yet: not tried
    assert embeds() == 3 and _backoff(db, v.queue)[0] == 1

    with psycopg.connect(db, autocommit=True) as conn:  # the wait is over (as the superuser)
        conn.execute(f"UPDATE {v.queue} SET _retry_after = now()")
    _call(db, http_retries=2)
    assert embeds() == 6
    attempts, wait = _backoff(db, v.queue)
    assert attempts == 2 and wait == pytest.approx(20, abs=1)

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"UPDATE {v.queue} SET _retry_after = now()")
    _call(db, http_retries=2)
    assert embeds() == 9
    with psycopg.connect(db) as conn:
        assert conn.execute(f"SELECT count(*) FROM {v.queue}").fetchone()[0] == 0
        assert conn.execute(f"SELECT _attempts FROM {v.failed_queue}").fetchone()[0] == 3
        assert conn.execute("SELECT failed_items FROM ai.vectorizer_status").fetchone()[0] == 1
        assert conn.execute("SELECT ai.retry_failed(%s)", (v.name,)).fetchone()[0] == 1
    proxy.mode = "pass"
    _call(db)
    check_exact(db, st_model)


def test_a_request_the_server_refuses_as_wrong_is_not_retried(db, proxy):
    """A 4xx other than 429 means the request is wrong: one request, however many retries."""
    _vectorizer(db, proxy.url, rows=1)
    proxy.mode = "reject_key"
    _call(db, http_retries=3)
    assert len(proxy.posts("/api/embed")) == 1
    assert "refused the request" in _errors(db)[0]
