"""Scale: the largest real corpus here, embedded in one run, then indexed and searched.

The corpus is the whole PostgreSQL 15 manual (Debian's postgresql-doc-15, about 1,160 pages,
11,700 chunks of 800 characters): the biggest real text this machine has without a download.
It is chunked and embedded by `CALL ai.execute_vectorizer` (the engine the background job
runs), with `pgweave wait` drawing the progress bar; the raw /api/embed rate on a sample of
the same chunks is measured before and after for the ratio. Then, at that size:

- the HNSW index build (m=16, ef_construction=64): seconds and size;
- query latency (client round trip, prepared, warm) and recall@k against the exact scan,
  for the hand-written pgvector query without and with the index (ef_search 40 and 100)
  and for `ai.semantic_search` through the index;
- the time this rate needs for 30 minutes' worth and for 10M chunks.

    .venv/bin/python bench/bench_scale.py [--pages 0] [--prefix ''] [--k 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_search import QUESTIONS  # noqa: E402
from common import (CHUNK_OVERLAP, CHUNK_SIZE, TEMPLATE, database, formatted_chunks,  # noqa: E402
                    percentile, raw_seconds, recall, say, stack, table, timed)

from pgweave.corpus import postgres_docs  # noqa: E402

REQUEST = 64  # the engine's embedding_batch_size
EXACT = """SELECT embedding_uuid, embedding OPERATOR(public.<=>) %s::vector AS distance
           FROM docs_embedding_store ORDER BY distance LIMIT %s"""
SEMANTIC = "SELECT (hit).embedding_uuid, distance FROM ai.semantic_search(NULL::docs_embedding, %s, k => %s)"


def raw_rate(url: str, texts: list[str]) -> float:
    """Chunks per second through /api/embed, in the engine's request size."""
    return len(texts) / raw_seconds(url, [texts[i:i + REQUEST] for i in range(0, len(texts), REQUEST)])


def backfill(dsn: str, pages: list) -> float:
    """Load the pages, declare the vectorizer and drain it in the database; seconds taken."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, slug text NOT NULL, title text NOT NULL, body text NOT NULL)")
        with conn.cursor().copy("COPY docs (id, slug, title, body) FROM STDIN") as copy:
            for i, p in enumerate(pages):
                copy.write_row((i, p.slug, p.title, p.body))
        conn.execute(f"""SELECT ai.create_vectorizer('docs'::regclass, name => 'docs_embedding',
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            chunking => ai.chunking_recursive_character_text_splitter({CHUNK_SIZE}, {CHUNK_OVERLAP}),
            formatting => ai.formatting_python_template('{TEMPLATE}'),
            indexing => ai.indexing_none(), scheduling => ai.scheduling_none())""")
    failure: list[BaseException] = []

    def drain() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
        except BaseException as e:  # reported after the progress bar
            failure.append(e)

    start = time.perf_counter()
    thread = threading.Thread(target=drain)
    thread.start()
    # The product's own progress bar, on stderr (it returns once the queue is empty).
    subprocess.run([str(Path(sys.executable).with_name("pgweave")), "wait", "docs_embedding", "--dsn", dsn,
                    "--interval", "2"], stdout=sys.stderr, check=False)
    thread.join()
    seconds = time.perf_counter() - start
    if failure:
        raise SystemExit(f"the backfill failed: {failure[0]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=0, help="documentation pages; 0 = all")
    parser.add_argument("--prefix", default="", help="page file-name prefix ('' = the whole manual)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sample", type=int, default=640, help="chunks in the raw-rate sample")
    args = parser.parse_args()
    k = args.k

    say("parsing the manual")
    pages = postgres_docs(args.pages or None, args.prefix or None)
    texts = [t for p in pages for t in formatted_chunks(p.title, p.body)]
    sample = texts[:: max(1, len(texts) // args.sample)][:args.sample]
    chars = sum(len(p.body) for p in pages)
    say(f"{len(pages)} pages, {chars / 1e6:.1f} M characters, {len(texts)} chunks")

    with stack() as (cluster, url):
        dsn = database(cluster, "bench_scale", url)
        raw_rate(url, sample[:REQUEST])  # load the model
        raw_before = raw_rate(url, sample)
        say(f"raw /api/embed: {raw_before:.1f} chunks/s; backfill of {len(texts)} chunks in the database")
        seconds = backfill(dsn, pages)
        raw_after = raw_rate(url, sample)
        raw = (raw_before + raw_after) / 2
        with psycopg.connect(dsn, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0]
            conn.execute("VACUUM ANALYZE docs, docs_embedding_store")
            store_mb = conn.execute("SELECT pg_total_relation_size('docs_embedding_store') / 1e6").fetchone()[0]
            rate = stored / seconds
            table(f"Backfill: {len(pages)} pages of the PostgreSQL manual, {chars / 1e6:.1f} M characters "
                  f"(recursive splitter {CHUNK_SIZE}/{CHUNK_OVERLAP}, '{TEMPLATE}', all-minilm on 2 CPU cores)",
                  ["path", "chunks", "seconds", "chunks/s", "vs raw", "store MB"],
                  [[f"raw /api/embed, {REQUEST} per request (sample of {len(sample)}; before, after)", "-", "-",
                    f"{raw:.1f} ({raw_before:.1f}, {raw_after:.1f})", "1.00×", "-"],
                   ["CALL ai.execute_vectorizer", stored, f"{seconds:.0f}", f"{rate:.1f}", f"{rate / raw:.2f}×",
                    f"{store_mb:.0f}"]],
                  f"At this rate 30 minutes embed about {rate * 1800:,.0f} chunks ({rate * 1800 / stored:.1f}× this "
                  f"corpus); 10M chunks would take {1e7 / rate / 86400:.1f} days on one such machine.")

            say("query embeddings, exact scan")
            questions = [q for q, _ in QUESTIONS]
            vectors = [conn.execute("SELECT ai.vectorizer_embed('docs_embedding', %s)::text", (q,)).fetchone()[0]
                       for q in questions]
            rows = []
            exact_lat, exact_rows = timed(conn, EXACT, [(v, k) for v in vectors], args.rounds)
            exact = [{r[0] for r in res} for res in exact_rows]
            rows.append(["hand-written, exact scan (no index)", exact_lat, exact_rows])

            say("HNSW build")
            conn.execute("SET maintenance_work_mem = '1GB'")
            start = time.perf_counter()
            conn.execute("CREATE INDEX docs_embedding_hnsw ON docs_embedding_store "
                         "USING hnsw (embedding vector_cosine_ops)")
            build = time.perf_counter() - start
            index_mb = conn.execute("SELECT pg_relation_size('docs_embedding_hnsw') / 1e6").fetchone()[0]
            conn.execute("ANALYZE docs_embedding_store")
            for ef in (40, 100):
                conn.execute(f"SET hnsw.ef_search = {ef}")
                lat, res = timed(conn, EXACT, [(v, k) for v in vectors], args.rounds)
                rows.append([f"hand-written, HNSW, ef_search {ef}", lat, res])
            conn.execute("RESET hnsw.ef_search")
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + EXACT, (vectors[0], k)).fetchall())
            lat, res = timed(conn, SEMANTIC, [(q, k) for q in questions], args.rounds)
            rows.append(["ai.semantic_search (cached query), HNSW, ef_search 40", lat, res])

        table(f"HNSW at {stored} chunks", ["index", "build seconds", "size MB"],
              [["hnsw (embedding vector_cosine_ops), m=16, ef_construction=64", f"{build:.1f}", f"{index_mb:.0f}"]])
        base = percentile(exact_lat, 50)
        table(f"Search at {stored} chunks: {len(questions)} questions × {args.rounds} rounds, k={k} "
              "(ms, client round trip)",
              ["query", "p50", "p95", "speed vs exact (p50)", f"recall@{k} vs exact"],
              [[label, f"{percentile(lat, 50):.2f}", f"{percentile(lat, 95):.2f}",
                f"{base / percentile(lat, 50):.2f}×", recall(res, exact)]
               for label, lat, res in rows],
              "The HNSW rows use the index: " + ("yes" if "hnsw" in plan.lower() else "NO (the planner chose a scan)"))


if __name__ == "__main__":
    main()
