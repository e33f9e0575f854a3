"""`pgweave worker`: external processes drive the same procedure, woken by NOTIFY."""

from __future__ import annotations

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
    assert result.returncode == 1
    assert 'vectorizer "nope" does not exist' in result.stderr
