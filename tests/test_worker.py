"""`pgweave worker`: external processes drive the same procedure, woken by NOTIFY."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import psycopg

from pgweave.worker import run_worker


def _vectorizer(db: str, rows: int) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT i, 'Note number ' || i || ' about databases.' FROM generate_series(1, %s) i",
                     (rows,))
        conn.execute("""SELECT ai.create_vectorizer('notes'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
            processing => ai.processing_default(batch_size => 4))""")


def test_two_worker_processes_share_a_queue_without_double_processing(db):
    _vectorizer(db, 80)
    env = {**os.environ, "PGWEAVE_DSN": db}
    cmd = [sys.executable, "-m", "pgweave", "worker", "--once", "--concurrency", "2"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with psycopg.connect(db) as conn:
        processed, embedded = conn.execute(
            "SELECT items_processed, chunks_embedded FROM ai.vectorizer_status").fetchone()
        stored = conn.execute("SELECT count(*), count(DISTINCT id) FROM notes_embedding").fetchone()
    assert (processed, embedded) == (80, 80)
    assert stored == (80, 80)


def test_a_waiting_worker_is_woken_by_notify(db):
    _vectorizer(db, 0)
    stop = threading.Event()
    rounds: list[int] = []
    thread = threading.Thread(target=run_worker, kwargs=dict(
        dsn=db, poll_interval=120, stop=stop, on_round=lambda s: rounds.append(s.rounds)))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not rounds:  # the first drain has run; the worker now waits on LISTEN
            assert time.monotonic() < deadline
            time.sleep(0.05)
        start = time.monotonic()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("INSERT INTO notes VALUES (1, 'A fresh note.')")
            while conn.execute("SELECT count(*) FROM notes_embedding").fetchone()[0] == 0:
                assert time.monotonic() - start < 30, "the worker was not woken"
                time.sleep(0.05)
        assert time.monotonic() - start < 30  # far below the 120 s poll: NOTIFY woke it
    finally:
        stop.set()
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("NOTIFY ai_vectorizer")
        thread.join(30)


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
