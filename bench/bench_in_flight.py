"""Model-bound backfills with 1 and 2 embedding requests in flight, against the raw model rate.

    .venv/bin/python bench/bench_in_flight.py [--pages 25] [--rounds 3]

A real model (all-minilm on `pgweave serve`, the CPU): `CALL ai.execute_vectorizer` drains the
same documentation pages with `ai.embedding_requests_in_flight` 1 and 2, interleaved with the
raw /api/embed rate of the same chunks in the same requests, so that the machine's drift hits
all three alike. Printed: chunks/s (median of the rounds) and the ratio to the raw rate. It
answers whether keeping a second request queued at a busy model server costs anything there
(bench_overhead.py shows what it gains against a server that answers late). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (CHUNK_OVERLAP, CHUNK_SIZE, TEMPLATE, database, formatted_chunks, raw_seconds,  # noqa: E402
                    say, stack, table)

from pgweave.corpus import postgres_docs  # noqa: E402

REQUEST = 64


def backfill(dsn: str, docs: list, in_flight: int) -> float:
    """Seconds for CALL ai.execute_vectorizer to embed every page, on a fresh table and vectorizer."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM ai.vectorizer WHERE name = 'pages_embedding'").fetchone():
            conn.execute("SELECT ai.drop_vectorizer('pages_embedding', drop_all => true)")
        conn.execute("DROP TABLE IF EXISTS pages CASCADE")
        conn.execute("CREATE TABLE pages (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL)")
        with conn.cursor().copy("COPY pages (id, title, body) FROM STDIN") as copy:
            for i, page in enumerate(docs):
                copy.write_row((i, page.title, page.body))
        conn.execute(f"""SELECT ai.create_vectorizer('pages'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384),
            chunking => ai.chunking_recursive_character_text_splitter({CHUNK_SIZE}, {CHUNK_OVERLAP}),
            formatting => ai.formatting_python_template('{TEMPLATE}'),
            processing => ai.processing_default(embedding_batch_size => {REQUEST}),
            scheduling => ai.scheduling_none())""")
        conn.execute(f"SET ai.embedding_requests_in_flight = {in_flight}")
        start = time.perf_counter()
        conn.execute("CALL ai.execute_vectorizer('pages_embedding')")
        return time.perf_counter() - start


def main() -> None:
    """Interleave raw, 1 and 2 in flight for --rounds rounds; print one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=25, help="documentation pages of the SQL reference")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    docs = postgres_docs(limit=args.pages, prefix="sql-")
    texts = [t for d in docs for t in formatted_chunks(d.title, d.body)]
    requests = [texts[i:i + REQUEST] for i in range(0, len(texts), REQUEST)]
    rates: dict[str, list[float]] = {"raw /api/embed, the same requests": [], "1": [], "2 (default)": []}
    with stack() as (cluster, url):
        dsn = database(cluster, "in_flight", url)
        raw_seconds(url, requests[:1])  # the model loads
        for r in range(args.rounds):
            rates["raw /api/embed, the same requests"].append(len(texts) / raw_seconds(url, requests))
            for label, n in (("1", 1), ("2 (default)", 2)):
                rates[label].append(len(texts) / backfill(dsn, docs, n))
            say(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()))
    raw = statistics.median(rates["raw /api/embed, the same requests"])
    rows = [[label, f"{statistics.median(v):.1f}", f"{statistics.median(v) / raw:.2f}x"] for label, v in rates.items()]
    table(f"Model-bound backfill (all-minilm on the CPU), {len(docs)} pages, {len(texts)} chunks, "
          f"requests of {REQUEST}, median of {args.rounds} interleaved rounds",
          ["`ai.embedding_requests_in_flight`", "chunks/s", "vs raw"], rows)


if __name__ == "__main__":
    main()
