"""Search latency: ai.semantic_search and ai.hybrid_search against the hand-written pgvector
query with the same vector, on paragraphs of the PostgreSQL SQL reference embedded by the
real model (all-minilm, 384 dimensions).

Every query is timed end to end from the client (psycopg, prepared statements), warm:
    hand-written   SELECT ..., embedding <=> $vec AS distance FROM docs_embedding
                   ORDER BY distance LIMIT k          ($vec computed once, beforehand)
    semantic       SELECT ... FROM ai.semantic_search(NULL::docs_embedding, $query, k)
                   (query embedding from the cache: no model call)
    hybrid         SELECT ... FROM ai.hybrid_search(NULL::docs_embedding, $query, k)
once with the store scanned exactly (no vector index) and once with an HNSW index; plus the
first, uncached call (one model call), and a filtered search. It also prints how often the
expected reference page comes first (relevance) for semantic and hybrid search.

    .venv/bin/python bench/bench_search.py [--rows 2000] [--rounds 10] [--k 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import database, percentile, recall, say, stack, table, timed  # noqa: E402

from pgweave.corpus import postgres_docs  # noqa: E402

# A question a user would ask, and the reference pages that answer it.
QUESTIONS = [
    ("How do I remove a table?", {"sql-droptable"}),
    ("How do I add a column to an existing table?", {"sql-altertable"}),
    ("How do I build an index on a column?", {"sql-createindex"}),
    ("How do I load data from a file into a table?", {"sql-copy"}),
    ("How can I see the execution plan of a query?", {"sql-explain"}),
    ("How do I let another role read my table?", {"sql-grant"}),
    ("How do I take privileges away from a role?", {"sql-revoke"}),
    ("How do I reclaim the space of dead rows?", {"sql-vacuum"}),
    ("How do I collect statistics for the query planner?", {"sql-analyze"}),
    ("How do I create a new user who can log in?", {"sql-createrole", "sql-createuser"}),
    ("How do I start a transaction block?", {"sql-begin", "sql-start-transaction"}),
    ("How do I roll back part of a transaction?", {"sql-savepoint", "sql-rollback-to"}),
    ("How do I rebuild a corrupted index?", {"sql-reindex"}),
    ("How do I wait for notifications on a channel?", {"sql-listen", "sql-notify"}),
    ("How do I lock a table explicitly?", {"sql-lock"}),
    ("How do I refresh a materialized view?", {"sql-refreshmaterializedview"}),
    ("How do I empty a table quickly?", {"sql-truncate"}),
    ("How do I run a function when a row is inserted?", {"sql-createtrigger"}),
    ("How do I create a new database?", {"sql-createdatabase"}),
    ("How do I update a row if the insert conflicts?", {"sql-insert"}),
]

SHARDS = 50  # docs.shard = id % 50: a filter that keeps 2% of the rows

HAND_WRITTEN = """SELECT id, page, body, embedding OPERATOR(public.<=>) %s::vector AS distance
                  FROM docs_embedding ORDER BY distance LIMIT %s"""
SEMANTIC = """SELECT (hit).id, (hit).page, (hit).body, distance
              FROM ai.semantic_search(NULL::docs_embedding, %s, k => %s)"""
HYBRID = """SELECT (hit).id, (hit).page, (hit).body, score
            FROM ai.hybrid_search(NULL::docs_embedding, %s, k => %s)"""
FILTERED_HAND = """SELECT id, page, body, embedding OPERATOR(public.<=>) %s::vector AS distance
                   FROM docs_embedding WHERE shard = %s ORDER BY distance LIMIT %s"""
FILTERED_SEMANTIC = """SELECT (hit).id, (hit).page, (hit).body, distance
                       FROM ai.semantic_search(NULL::docs_embedding, %s, k => %s, filter => %s)"""


def paragraphs(count: int) -> list[tuple[str, str, str]]:
    """(page slug, page title, paragraph) of the SQL reference, round-robin over the pages so
    every page is represented."""
    pages = [(p.slug, p.title, [" ".join(x.split()) for x in p.body.split("\n\n") if 80 <= len(x.strip()) <= 400])
             for p in postgres_docs()]
    out, seen, depth = [], set(), 0
    while len(out) < count and any(depth < len(ps) for _, _, ps in pages):
        for slug, title, ps in pages:
            if depth < len(ps) and ps[depth] not in seen and len(out) < count:
                seen.add(ps[depth])
                out.append((slug, title, ps[depth]))
        depth += 1
    return out


def load(dsn: str, rows: list[tuple[str, str, str]]) -> float:
    """The docs table and its vectorizer, drained; returns the seconds the backfill took."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS docs CASCADE")
        conn.execute("""CREATE TABLE docs (id int PRIMARY KEY, page text NOT NULL, title text NOT NULL,
                                           body text NOT NULL, shard int NOT NULL)""")
        with conn.cursor().copy("COPY docs (id, page, title, body, shard) FROM STDIN") as copy:
            for i, row in enumerate(rows):
                copy.write_row((i, *row, i % SHARDS))
        conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_none(),
            formatting => ai.formatting_python_template('$title: $chunk'),
            indexing => ai.indexing_none(), scheduling => ai.scheduling_none())""")
        start = time.perf_counter()
        conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
        conn.execute("VACUUM ANALYZE docs, docs_embedding_store")
        seconds = time.perf_counter() - start
        conn.execute("SELECT ai.create_text_index('docs_embedding')")  # searches no longer create it
        return seconds


def stats(label: str, latencies: list[float], baseline: float | None, rows: str, recall: str = "-") -> list:
    p50 = percentile(latencies, 50)
    return [label, f"{p50:.2f}", f"{percentile(latencies, 95):.2f}", f"{statistics.mean(latencies):.2f}",
            f"{p50 - baseline:+.2f}" if baseline is not None else "-", rows, recall]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    rows = paragraphs(args.rows)
    questions = [q for q, _ in QUESTIONS]
    k = args.k
    with stack() as (cluster, url):
        dsn = database(cluster, "bench_search", url)
        backfill = load(dsn, rows)
        say(f"embedded {len(rows)} paragraphs of the SQL reference in {backfill:.0f} s")
        with psycopg.connect(dsn, autocommit=True) as conn:
            # First calls: the query embedding is a model call (then cached).
            cold = []
            for q in questions:
                start = time.perf_counter()
                conn.execute(SEMANTIC, (q, k)).fetchall()
                cold.append((time.perf_counter() - start) * 1000)
            vectors = {q: conn.execute("SELECT ai.vectorizer_embed('docs_embedding', %s)::text", (q,)).fetchone()[0]
                       for q in questions}
            hybrid_warm = conn.execute(HYBRID, (questions[0], k)).fetchall()  # creates the full-text index
            assert hybrid_warm

            out, relevance, exact = [], [], []
            for mode in ("exact scan (no vector index)", "HNSW index (m=16, ef_construction=64)"):
                if mode.startswith("HNSW"):
                    conn.execute("CREATE INDEX ON docs_embedding_store USING hnsw (embedding vector_cosine_ops)")
                    conn.execute("ANALYZE docs_embedding_store")
                    # A 2000-row store is sorted exactly unless told otherwise; at scale the
                    # planner picks the index by itself.
                    conn.execute("SET enable_seqscan = off")
                hand, hand_rows = timed(conn, HAND_WRITTEN, [(vectors[q], k) for q in questions], args.rounds)
                sem, sem_rows = timed(conn, SEMANTIC, [(q, k) for q in questions], args.rounds)
                hyb, hyb_rows = timed(conn, HYBRID, [(q, k) for q in questions], args.rounds)
                exact = exact or [{r[0] for r in rows} for rows in hand_rows]  # the exact scan's top k
                base = percentile(hand, 50)
                out += [stats(f"{mode}: hand-written pgvector query", hand, None, f"{k}", recall(hand_rows, exact)),
                        stats(f"{mode}: ai.semantic_search (cached)", sem, base, f"{k}", recall(sem_rows, exact)),
                        stats(f"{mode}: ai.hybrid_search (cached)", hyb, base, f"{k}",
                              f"{recall(hyb_rows, exact)} (fused ranking)")]
                if mode.startswith("exact"):
                    for name, results in (("semantic", sem_rows), ("hybrid", hyb_rows)):
                        at1 = sum(r[0][1] in pages for r, (_, pages) in zip(results, QUESTIONS) if r)
                        at5 = sum(any(x[1] in pages for x in r[:5]) for r, (_, pages) in zip(results, QUESTIONS))
                        relevance.append([f"ai.{name}_search", f"{at1}/{len(QUESTIONS)}", f"{at5}/{len(QUESTIONS)}"])

            # A selective filter (2% of the rows) through the HNSW index: the planner is made to
            # walk the index (a small store would otherwise be sorted exactly).
            shards = [i % SHARDS for i in range(len(questions))]
            conn.execute("SET hnsw.iterative_scan = off; SET enable_sort = off; SET jit = off")
            fh, fh_rows = timed(conn, FILTERED_HAND, [(vectors[q], n, k) for q, n in zip(questions, shards)],
                                args.rounds)
            fs, fs_rows = timed(conn, FILTERED_SEMANTIC,
                                [(q, k, f'{{"shard": {n}}}') for q, n in zip(questions, shards)], args.rounds)
            want = k * len(questions)
            out += [stats("filter shard = X (2%), HNSW: hand-written, iterative_scan off", fh, None,
                          f"{sum(map(len, fh_rows))}/{want} rows"),
                    stats("filter shard = X (2%), HNSW: ai.semantic_search (relaxed_order)", fs, percentile(fh, 50),
                          f"{sum(map(len, fs_rows))}/{want} rows")]
            conn.execute("RESET enable_sort; RESET enable_seqscan; RESET hnsw.iterative_scan; RESET jit")
            model, _ = timed(conn, "SELECT ai.ollama_embed('all-minilm', %s)", [(q,) for q in questions], 1)
            out.append(stats("model call alone: ai.ollama_embed, one query", model, None, "-"))
            out.append(stats("first call: ai.semantic_search (query not cached yet)", cold, None, f"{k}"))

        table(f"Search latency, {len(rows)} paragraphs, k={k}, {len(questions)} questions x {args.rounds} rounds "
              "(ms, client round trip)", ["query", "p50", "p95", "mean", "p50 vs hand-written", "rows", f"recall@{k} vs exact"], out,
              "recall: the share of the exact scan's top k (hand-written query, no index) found; hybrid "
              "search fuses keyword ranks by design, so its overlap with the vector-only top k is lower.")
        table("Relevance: the expected reference page ranks first / in the top 5 (exact scan)",
              ["function", "hit@1", "hit@5"], relevance)


if __name__ == "__main__":
    main()
