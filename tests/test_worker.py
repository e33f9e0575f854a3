"""`pgweave worker`: external processes drive the same procedure, woken by NOTIFY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import psycopg

from pgweave.worker import run_worker
from pgweave_testing.checker import check_exact
from pgweave_testing.claims import read_claims, record_claims
from pgweave_testing.fault_proxy import FaultProxy
from pgweave_testing.helpers import sql_until, started, wait_until
from pgweave_testing.vectorizers import create_vectorizer


def _vectorizer(db: str, rows: int, base_url: str | None = None):
    """notes with ``rows`` rows and a vectorizer (batches of 4) on it."""
    model = "ai.embedding_ollama('all-minilm', 384" + (f", base_url => '{base_url}')" if base_url else ")")
    return create_vectorizer(db, "notes", {i: f"Note number {i} about databases." for i in range(1, rows + 1)},
                             model=model, processing="batch_size => 4")


def test_two_worker_processes_share_a_queue_without_double_processing(db, model_server_url, st_model):
    """Two `pgweave worker --once` processes, provably draining at the same time (the model
    server holds four of their requests at once): every item processed by one of them only,
    none left behind, both took part."""
    proxy = FaultProxy(model_server_url)
    try:
        v = _vectorizer(db, 0, base_url=proxy.url)
        record_claims(db, v.queue)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("INSERT INTO notes SELECT i, 'Note number ' || i || ' about databases.' FROM generate_series(1, 80) i")
        proxy.mode = "gate"
        procs = [subprocess.Popen([sys.executable, "-m", "pgweave", "worker", "--once", "--concurrency", "2"],
                                  env={**os.environ, "PGWEAVE_DSN": db, "PGAPPNAME": f"w{i}"},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for i in range(2)]

        def both_mid_batch() -> bool:
            assert all(p.poll() is None for p in procs), "a worker ended before the gate opened"
            with psycopg.connect(db) as conn:
                active = {r[0] for r in conn.execute("""SELECT application_name FROM pg_stat_activity
                                                         WHERE query LIKE 'CALL ai.execute_vectorizer%%'""")}
            return proxy.held >= 4 and active == {"w0", "w1"}

        wait_until(both_mid_batch, "both worker processes mid-batch at once", 120)
        proxy.mode = "pass"
        proxy.release(4)
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        proxy.close()
    assert all(p.returncode == 0 for p in procs), outputs
    read_claims(db).assert_split_exactly({"w0", "w1"})
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT items_processed, chunks_embedded FROM ai.vectorizer_status").fetchone() == (80, 80)
    check_exact(db, st_model, table="notes", store=v.store, queue=v.queue)


def test_a_waiting_worker_is_woken_by_notify(db, st_model):
    """The worker polls once an hour; the test waits at most a minute: only the trigger's NOTIFY
    can have made it drain the new row, in exactly one more round."""
    v = _vectorizer(db, 0)
    stop = threading.Event()
    rounds: list[int] = []
    worker = started(run_worker, dsn=db, poll_interval=3600, stop=stop,
                     on_round=lambda s: rounds.append(s.rounds), name="worker")
    try:
        wait_until(lambda: rounds == [1], "the worker's first drain")  # now it waits on LISTEN
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("INSERT INTO notes VALUES (1, 'A fresh note.')")
        sql_until(db, "SELECT count(*) = 1 FROM notes_embedding", "the worker, woken by NOTIFY, embedded the note")
        wait_until(lambda: len(rounds) >= 2, "the worker's second round to end")  # it ends after its commit
        assert rounds == [1, 2]
    finally:
        stop.set()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("NOTIFY ai_vectorizer")
    assert worker.result(60).errors == []
    check_exact(db, st_model, table="notes", store=v.store, queue=v.queue)


def test_worker_with_an_unknown_vectorizer_fails_clearly(db):
    env = {**os.environ, "PGWEAVE_DSN": db}
    result = subprocess.run([sys.executable, "-m", "pgweave", "worker", "--once", "-v", "nope"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'vectorizer "nope" does not exist' in result.stderr
    assert "hint: create one with ai.create_vectorizer" in result.stderr


def _log_events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_worker_once_logs_each_batch_and_prints_items_and_chunks(db):
    _vectorizer(db, 10)     # batches of 4: 4 + 4 + 2
    env = {**os.environ, "PGWEAVE_DSN": db}
    result = subprocess.run([sys.executable, "-m", "pgweave", "worker", "--once", "--log-format", "json"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10 item(s), 10 chunk(s) embedded in 3 batch(es)"
    events = _log_events(result.stderr)
    assert [e["msg"] for e in events] == ["worker started", "serving", "batch done", "batch done",
                                          "batch done", "worker stopped"]
    assert events[1]["vectorizers"] == "notes_embedding"
    assert [(e["items"], e["chunks"]) for e in events if e["msg"] == "batch done"] == [(4, 4), (4, 4), (2, 2)]
    assert all(e["level"] == "info" and e["ts"].endswith("Z") for e in events)


def test_worker_logs_failed_batches_as_logfmt_and_exits_1_after_once(db):
    _vectorizer(db, 2)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER DATABASE " + conn.info.dbname + " SET ai.ollama_host = 'http://127.0.0.1:9'")
    env = {**os.environ, "PGWEAVE_DSN": db}
    result = subprocess.run([sys.executable, "-m", "pgweave", "worker", "--once", "--log-level", "warning"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    [failed] = [line for line in result.stderr.splitlines() if line.startswith("ts=")]
    assert 'level=error msg="batch failed" vectorizer=notes_embedding items=0 chunks=0' in failed
    assert 'error="cannot reach the model server at http://127.0.0.1:9"' in failed   # quoted: has spaces
    assert "worker started" not in result.stderr     # info is below --log-level warning
    assert "hint: `pgweave errors` lists them" in result.stderr


def test_the_worker_honours_a_disabled_schedule_and_serves_only_what_its_role_may(db, app_role):
    """As pgai's worker does, a disabled vectorizer is skipped; a role that is not a member of a
    vectorizer's owner does not try it at all (and says it is alive for status)."""
    paused = _vectorizer(db, 3)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT ai.disable_vectorizer_schedule(%s)", (paused.name,))
    stats = run_worker(db, once=True)
    with psycopg.connect(db) as conn:
        assert stats.items == 0
        assert conn.execute("SELECT ai.vectorizer_queue_pending(%s)", (paused.name,)).fetchone()[0] == 3
        conn.execute("SELECT ai.enable_vectorizer_schedule(%s)", (paused.name,))
        conn.commit()
    stats = run_worker(app_role, once=True)      # app_user does not own notes: nothing to serve
    assert stats.items == 0 and stats.errors == []
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT role FROM ai._worker_seen ORDER BY seen_at DESC LIMIT 1").fetchone()[0] == "app_user"
    assert run_worker(db, once=True).items == 3
