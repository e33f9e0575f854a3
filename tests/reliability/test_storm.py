"""A concurrent storm: writers, truncates, background drains and external workers at once."""

from __future__ import annotations

import os
import random
import threading
import time

import psycopg

from pgweave.worker import run_worker

from pgweave_testing.checker import check_exact
from pgweave_testing.claims import read_claims, record_claims
from pgweave_testing.helpers import sql_until, started

WORDS = "index vacuum replica planner tuple page lock snapshot commit checkpoint".split()


def _writer(dsn: str, seed: int, until: list[float], counts: dict) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < until[0]:
            key = rng.randrange(40)
            body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 60))) + "."
            op = rng.random()
            if op < 0.45:
                conn.execute("INSERT INTO docs (id, body) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                             (key, body))
            elif op < 0.7:
                conn.execute("UPDATE docs SET other = other + 1 WHERE id = %s", (key,))  # not embedded
            elif op < 0.95:
                conn.execute("DELETE FROM docs WHERE id = %s", (key,))
            else:
                conn.execute("UPDATE docs SET body = body WHERE id = %s", (key,))  # unchanged text
            counts["writes"] += 1
            time.sleep(rng.random() * 0.01)


def test_concurrent_storm_converges_exactly(db, make_vectorizer, st_model):
    v = make_vectorizer(db, processing="batch_size => 8")
    record_claims(db, v.queue)
    counts = {"writes": 0, "truncates": 0, "truncate_waits": 0}
    stop = threading.Event()
    until = [time.monotonic() + 3600]  # set by the truncator: writers go on 4 s after its last truncate

    def in_database_loop():  # what the pg_cron job does, without waiting for the minute
        with psycopg.connect(db, autocommit=True, application_name="in-database") as conn:
            while not stop.is_set():
                conn.execute("CALL ai.execute_vectorizer(%s)", (v.name,))
                time.sleep(0.1)

    def truncator():
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            # `make soak` stretches the storm: PGWEAVE_SOAK_SECONDS of truncate cycles.
            cycles = max(2, int(os.environ.get("PGWEAVE_SOAK_SECONDS", "6")) // 3)
            for _ in range(cycles):
                time.sleep(3)
                try:
                    conn.execute("TRUNCATE docs")
                    counts["truncates"] += 1
                except psycopg.errors.LockNotAvailable:
                    counts["truncate_waits"] += 1
        until[0] = time.monotonic() + 4

    writers = [started(_writer, db, seed, until, counts, name=f"writer{seed}") for seed in range(3)]
    workers = [started(run_worker, dsn=psycopg.conninfo.make_conninfo(db, application_name=f"worker{i}"),
                       concurrency=2, poll_interval=0.3, stop=stop, name=f"worker{i}") for i in range(2)]
    drainers = workers + [started(in_database_loop, name="in-database")]
    started(truncator, name="truncator").result(600)
    for w in writers:
        w.result(120)
    # The drainers alone bring the queue to empty: the test never drains it itself.
    sql_until(db, f"SELECT count(*) = 0 FROM {v.queue}", "the drainers emptied the queue", 300)
    stop.set()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("NOTIFY ai_vectorizer")
    stats = [w.result(120) for w in workers]
    drainers[-1].result(120)
    assert [s.errors for s in stats] == [[], []]
    with psycopg.connect(db, autocommit=True) as conn:
        processed, embedded, reused = conn.execute(
            "SELECT items_processed, chunks_embedded, chunks_reused FROM ai.vectorizer_status").fetchone()
        errors = conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0]
    claims = read_claims(db)
    claims.assert_split_exactly({"worker0", "worker1", "in-database"})
    figures = check_exact(db, st_model)
    assert errors == 0 and figures["rows"] > 0 and counts["truncates"] > 0
    print(f"\n[storm] writes={counts['writes']} truncates={counts['truncates']} (lock waits {counts['truncate_waits']}) items={processed} "
          f"embedded={embedded} reused={reused} final rows={figures['rows']} chunks={figures['chunks']} "
          f"items by drainer={ {d: len(i) for d, i in sorted(claims.items.items())} }")
