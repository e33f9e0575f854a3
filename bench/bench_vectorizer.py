"""Vectorizer throughput and freshness, side by side in one run.

Backfill: rows/s and chunks/s of the in-database engine (CALL ai.execute_vectorizer) and of
`pgweave worker`, against the model server's raw /api/embed rate on the same chunks.
Freshness: insert-to-searchable latency of single rows with the pg_cron resident job and
with a waiting `pgweave worker` (LISTEN/NOTIFY).

    .venv/bin/python bench/bench_vectorizer.py [--rows 600] [--fresh 20]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import database, passages, percentile, stack, table  # noqa: E402

from pgweave.worker import run_worker  # noqa: E402

CREATE = """SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
    embedding => ai.embedding_ollama('all-minilm', 384), scheduling => {scheduling},
    chunking => ai.chunking_recursive_character_text_splitter(800, 0), indexing => ai.indexing_none())"""


def raw_rate(url: str, texts: list[str], batch: int = 64) -> float:
    """Texts per second through /api/embed, batched like the engine."""
    start = time.perf_counter()
    with httpx.Client(timeout=600) as client:
        for i in range(0, len(texts), batch):
            client.post(url + "/api/embed", json={"model": "all-minilm", "input": texts[i:i + batch]}).raise_for_status()
    return len(texts) / (time.perf_counter() - start)


def load(dsn: str, texts: list[str], scheduling: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS docs CASCADE")
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        with conn.cursor().copy("COPY docs (id, body) FROM STDIN") as copy:
            for i, text in enumerate(texts):
                copy.write_row((i, text))
        conn.execute(CREATE.format(scheduling=scheduling))


def chunks(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0]


def backfill_in_database(dsn: str, texts: list[str]) -> tuple[float, int]:
    load(dsn, texts, "ai.scheduling_none()")
    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
    return time.perf_counter() - start, chunks(dsn)


def backfill_worker(dsn: str, texts: list[str], concurrency: int) -> tuple[float, int]:
    load(dsn, texts, "ai.scheduling_none()")
    start = time.perf_counter()
    run_worker(dsn, ["docs_embedding"], concurrency=concurrency, once=True)
    return time.perf_counter() - start, chunks(dsn)


def freshness(dsn: str, count: int, start_worker: bool) -> list[float]:
    """Seconds from an insert's commit until its chunk is in the view, per row."""
    load(dsn, [], "ai.scheduling_none()" if start_worker else "ai.scheduling_cron()")
    stop = threading.Event()
    if start_worker:
        threading.Thread(target=run_worker, kwargs=dict(dsn=dsn, poll_interval=60, stop=stop), daemon=True).start()
    latencies = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO docs VALUES (-1, 'warm-up row')")  # wait for the job's first start
        while conn.execute("SELECT count(*) FROM docs_embedding").fetchone()[0] == 0:
            time.sleep(0.05)
        for i in range(count):
            conn.execute("INSERT INTO docs VALUES (%s, %s)", (i, f"Fresh row {i} about query planning."))
            start = time.perf_counter()
            while not conn.execute("SELECT EXISTS (SELECT 1 FROM docs_embedding WHERE id = %s)", (i,)).fetchone()[0]:
                time.sleep(0.01)
            latencies.append(time.perf_counter() - start)
            time.sleep(0.3)
    stop.set()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("NOTIFY ai_vectorizer")
        conn.execute("SELECT ai.drop_vectorizer('docs_embedding', drop_all => true)")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--fresh", type=int, default=20)
    args = parser.parse_args()
    texts = passages(args.rows)
    with stack() as (cluster, url):
        dsn = database(cluster, "bench", url)
        raw_rate(url, texts[:64])  # load the model before timing anything
        raw = raw_rate(url, texts)
        rows = []
        for label, run in [("CALL ai.execute_vectorizer (in Postgres)", lambda: backfill_in_database(dsn, texts)),
                           ("pgweave worker --concurrency 1", lambda: backfill_worker(dsn, texts, 1)),
                           ("pgweave worker --concurrency 2", lambda: backfill_worker(dsn, texts, 2))]:
            seconds, n = run()
            rows.append([label, f"{len(texts) / seconds:.1f}", f"{n / seconds:.1f}", f"{n / seconds / raw:.2f}"])
        rows.insert(0, ["raw /api/embed, batches of 64", "-", f"{raw:.1f}", "1.00"])
        table(f"Backfill of {len(texts)} rows ({len(texts)} chunks of ~100 tokens, all-minilm, 2 CPUs)",
              ["path", "rows/s", "chunks/s", "vs raw model"], rows)

        cron_dsn = database(cluster, "postgres", url)
        with psycopg.connect(cron_dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        fresh_rows = []
        for label, worker in [("pg_cron resident job (default)", False), ("pgweave worker (LISTEN/NOTIFY)", True)]:
            lat = freshness(cron_dsn, args.fresh, worker)
            fresh_rows.append([label, f"{percentile(lat, 50) * 1000:.0f}", f"{percentile(lat, 95) * 1000:.0f}",
                               f"{max(lat) * 1000:.0f}"])
        table(f"Freshness: one inserted row until searchable ({args.fresh} rows)",
              ["processing", "p50 ms", "p95 ms", "max ms"], fresh_rows)


if __name__ == "__main__":
    main()
