"""Search on replicas, and search's own overhead, with vectors from the SYNTHETIC server.

A primary and a hot standby made from it with `pg_basebackup -R` (LocalCluster.standby), on
this machine. The store: 2,000 paragraphs of the PostgreSQL manual, embedded through the
synthetic embedding server (bench/synthetic_server.py: hash vectors, not a model, so the
ranking means nothing; the work per query is the real one), HNSW index, queries cached.

1. Overhead: p50 latency of ai.semantic_search against the hand-written pgvector query with
   the same vector (client round trip, prepared, warm), on the primary and on the standby; and
   of ai.semantic_search with a where_clause (which keeps every row, but makes search use
   pgvector's iterative scans from the start).
2. Throughput: ai.semantic_search by --clients client threads for --seconds, all on the
   primary, then split between primary and standby (same total clients).
3. Where search's overhead goes, inside the server (no client round trip): microseconds per
   call of the hand-written query, of ai.semantic_search's own statement (planned each call), of
   the first scan it prepares for a cached query (its plan kept), of the planned statement in a
   bare PL/pgSQL function (no lookups, no query cache) with and without pgvector's iterative
   scans, of ai._search_parts (which reads the cached query vector), and of ai.semantic_search.

    .venv/bin/python bench/bench_replicas.py [--rows 2000] [--clients 4] [--seconds 10] [--k 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import synthetic_server  # noqa: E402
from common import percentile, say, table  # noqa: E402

from pgweave.corpus import postgres_docs  # noqa: E402
from pgweave.install import install  # noqa: E402
from pgweave.localdb import LocalCluster  # noqa: E402

SEMANTIC = "SELECT s.rank, (s.hit).id FROM ai.semantic_search(NULL::docs_embedding, %s, k => %s) s"
FILTERED = ("SELECT s.rank, (s.hit).id FROM ai.semantic_search(NULL::docs_embedding, %s, k => %s, "
            "where_clause => 'v.id >= 0') s")
HAND = ("SELECT id, embedding OPERATOR(public.<=>) %s::public.vector AS d FROM docs_embedding "
        "ORDER BY d LIMIT %s")
QUESTIONS = [f"question {i}: how do I {w}?" for i, w in enumerate(
    ["drop a table", "add a column", "build an index", "copy a file", "explain a query", "grant a role",
     "vacuum", "analyze", "create a user", "begin a transaction", "lock a table", "truncate"])]


def paragraphs(count: int) -> list[str]:
    """``count`` paragraphs (200-1500 characters) of the manual."""
    out = []
    for page in postgres_docs(prefix=None):
        out += [p for p in page.body.split("\n\n") if 200 <= len(p) <= 1500]
        if len(out) >= count:
            return out[:count]
    return out


def latencies(dsn: str, paths: list[tuple[str, list[tuple]]], rounds: int) -> list[list[float]]:
    """Milliseconds per query of each (statement, params) path, prepared, after one warm-up
    round; the paths take turns call by call, so that this machine's drift hits them alike, and
    in an order that rotates (a query measured right after another ran faster than after a
    third: caches)."""
    out: list[list[float]] = [[] for _ in paths]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for r in range(rounds + 1):
            for i in range(len(paths[0][1])):
                for n in range(len(paths)):
                    p = (n + i + r) % len(paths)
                    statement, params = paths[p]
                    start = time.perf_counter()
                    conn.execute(statement, params[i], prepare=True).fetchall()
                    if r:
                        out[p].append((time.perf_counter() - start) * 1000)
    return out


# Microseconds per call of a statement run `calls` times by EXECUTE in one PL/pgSQL loop; the
# best of three loops (this VM's neighbours move single timings by +-20 %).
LOOP = """CREATE FUNCTION pg_temp.per_call(statement text, calls int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE best float8 := 'infinity'; started timestamptz;
BEGIN
    FOR round IN 1..3 LOOP
        started := clock_timestamp();
        FOR i IN 1..calls LOOP EXECUTE statement; END LOOP;
        best := least(best, extract(epoch FROM clock_timestamp() - started) * 1e6 / calls);
    END LOOP;
    RETURN best;
END $$"""


def floor(dsn: str, vector: str, question: str, k: int, calls: int) -> list[list[str]]:
    """The rows of table 3 (see the module's docstring), on one session."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LOOP)
        statement, prepared, key = conn.execute("""
            SELECT ai._search_sql('semantic', p.view, p.vector_type, p.distance_op, p.predicate, p.store, p.tsvector),
                   ai._search_prepared_sql(p.view, p.vector_type, p.distance_op, %s), p.cache_key
            FROM ai._search_parts('docs_embedding'::regtype::oid, %s, NULL, NULL, NULL, true) p""",
                                                 (k, question)).fetchone()
        conn.execute(f"PREPARE hand(public.vector, int) AS {HAND.replace('%s::public.vector', '$1').replace('%s', '$2')}")
        conn.execute(f"PREPARE statement(text, int) AS {statement}")
        conn.execute(f"PREPARE first_scan(text) AS {prepared}")
        # As ai.semantic_search runs it: EXECUTE, the rows numbered by a loop.
        conn.execute(f"""CREATE FUNCTION pg_temp.bare(source anyelement, query_vector text, k int)
            RETURNS TABLE (rank int, distance float8, hit anyelement) LANGUAGE plpgsql AS $f$
            DECLARE r record;
            BEGIN
                rank := 0;
                FOR r IN EXECUTE {sql.quote(statement)} USING query_vector, k LOOP
                    rank := rank + 1; distance := r.distance; hit := r.hit; RETURN NEXT;
                END LOOP;
            END $f$""")
        v, q = sql.quote(vector), sql.quote(question)
        # (name, plan_cache_mode, statement): 'auto' keeps a prepared plan, as a client's
        # prepared query does; 'force_custom_plan' plans every call, as PL/pgSQL's EXECUTE does.
        paths = [("hand-written query, prepared", "auto", f"EXECUTE hand({v}, {k})"),
                 ("hand-written query, planned each call", "force_custom_plan", f"EXECUTE hand({v}, {k})"),
                 ("ai.semantic_search's statement alone, planned each call", "force_custom_plan",
                  f"EXECUTE statement({v}, {k})"),
                 ("the first scan search prepares for a cached query, its kept plan", "auto",
                  f"EXECUTE first_scan({sql.quote(key)})"),
                 ("that statement in a bare PL/pgSQL function (EXECUTE, no lookups)", "auto",
                  f"SELECT count(*) FROM pg_temp.bare(NULL::docs_embedding, {v}, {k})"),
                 ("the bare function, iterative scans relaxed (as filtered searches set them)", "relaxed",
                  f"SELECT count(*) FROM pg_temp.bare(NULL::docs_embedding, {v}, {k})"),
                 ("ai._search_parts alone (view lock, vectorizer, cached query vector)", "auto",
                  f"SELECT ai._search_parts('docs_embedding'::regtype::oid, {q}, NULL, NULL, NULL, true)"),
                 ("`ai.semantic_search` (query embedding cached)", "auto",
                  f"SELECT count(*) FROM ai.semantic_search(NULL::docs_embedding, {q}, k => {k})")]
        times = []
        for _, mode, statement in paths:
            conn.execute("SELECT set_config('hnsw.iterative_scan', %s, false)",
                         ("relaxed_order" if mode == "relaxed" else "off",))
            conn.execute("SELECT set_config('plan_cache_mode', %s, false)", (mode.replace("relaxed", "auto"),))
            times.append(conn.execute("SELECT pg_temp.per_call(%s, %s)", (statement, calls)).fetchone()[0])
    return [[name, f"{t:.0f}", f"{t / times[0]:.2f}×"] for (name, _, _), t in zip(paths, times)]


def throughput(dsns: list[str], k: int, seconds: float) -> float:
    """Queries/s of one client thread per DSN, for ``seconds``."""
    counts = [0] * len(dsns)
    stop = time.perf_counter() + seconds

    def client(i: int, dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.perf_counter() < stop:
                conn.execute(SEMANTIC, (QUESTIONS[counts[i] % len(QUESTIONS)], k), prepare=True).fetchall()
                counts[i] += 1

    threads = [threading.Thread(target=client, args=(i, d)) for i, d in enumerate(dsns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    """Build the store, make the standby, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--calls", type=int, default=500, help="calls per timing loop of table 3")
    args = parser.parse_args()
    texts = paragraphs(args.rows)
    primary = LocalCluster(Path(tempfile.mkdtemp(prefix="pgweave-bench-")))
    primary.start()
    standby = None
    try:
        with synthetic_server(primary.root.parent / f"{primary.root.name}-synthetic.log") as (url, _):
            with psycopg.connect(primary.dsn(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE search")
                conn.execute(f"ALTER DATABASE search SET ai.ollama_host = '{url}'")
            dsn = primary.dsn("search")
            install(dsn, background=False)
            say(f"embedding {len(texts)} paragraphs through the synthetic server")
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL)")
                with conn.cursor().copy("COPY docs (id, body) FROM STDIN") as copy:
                    for i, t in enumerate(texts):
                        copy.write_row((i, t))
                conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
                    embedding => ai.embedding_ollama('synthetic', 384), chunking => ai.chunking_none(),
                    indexing => ai.indexing_none(), scheduling => ai.scheduling_none())""")
                conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
                conn.execute("CREATE INDEX ON docs_embedding_store USING hnsw (embedding vector_cosine_ops)")
                conn.execute("ANALYZE docs_embedding_store")
                vectors = [conn.execute("SELECT ai.vectorizer_embed('docs_embedding', %s)::text", (q,)).fetchone()[0]
                           for q in QUESTIONS]  # embeds and caches every question, on the primary
            say("making the hot standby (pg_basebackup -R)")
            standby = primary.standby(Path(tempfile.mkdtemp(prefix="pgweave-bench-standby-")))
            sdsn = standby.dsn("search")
            with psycopg.connect(dsn, autocommit=True) as conn:
                lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            with psycopg.connect(sdsn, autocommit=True) as conn:
                while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                    time.sleep(0.1)
            rows = []
            for where, target in (("primary", dsn), ("standby", sdsn)):
                asked = [(q, args.k) for q in QUESTIONS]
                hand, sem, filtered = latencies(target, [(HAND, [(v, args.k) for v in vectors]),
                                                         (SEMANTIC, asked), (FILTERED, asked)], args.rounds)
                base = percentile(hand, 50)
                rows.append([f"hand-written `ORDER BY embedding <=> $vec LIMIT {args.k}` ({where})",
                             f"{base:.2f}", f"{percentile(hand, 95):.2f}", "1.00×"])
                rows.append([f"`ai.semantic_search` ({where})", f"{percentile(sem, 50):.2f}",
                             f"{percentile(sem, 95):.2f}", f"{percentile(sem, 50) / base:.2f}×"])
                rows.append([f"`ai.semantic_search` with a where_clause ({where})", f"{percentile(filtered, 50):.2f}",
                             f"{percentile(filtered, 95):.2f}", f"{percentile(filtered, 50) / base:.2f}×"])
            table(f"Search overhead: {len(texts)} paragraphs, HNSW, k = {args.k}, query embedding cached "
                  f"(vectors from the SYNTHETIC server)", ["query", "p50 ms", "p95 ms", "p50 vs hand-written"],
                  rows, f"{len(QUESTIONS)} queries × {args.rounds} rounds, client round trip, prepared, warm; the "
                  "three queries take turns call by call.")
            say("throughput")
            n = args.clients
            alone = throughput([dsn] * n, args.k, args.seconds)
            split = throughput([dsn] * (n // 2) + [sdsn] * (n - n // 2), args.k, args.seconds)
            standby_only = throughput([sdsn] * n, args.k, args.seconds)
            table(f"Search throughput: `ai.semantic_search`, {n} client threads for {args.seconds:g} s "
                  f"(SYNTHETIC vectors, {len(texts)} paragraphs, HNSW)",
                  ["where the clients query", "queries/s", "vs primary alone"],
                  [["primary alone", f"{alone:.0f}", "1.00×"],
                   [f"primary + standby ({n // 2} + {n - n // 2})", f"{split:.0f}", f"{split / alone:.2f}×"],
                   ["standby alone", f"{standby_only:.0f}", f"{standby_only / alone:.2f}×"]],
                  "Both clusters run on the same machine and share its cores, so a standby adds no CPU "
                  "here: the row says the standby serves at the primary's rate, not what a second machine adds.")
            say("where the overhead goes (inside the server)")
            table(f"Search overhead inside the server: microseconds per call, k = {args.k}, primary",
                  ["what runs", "µs per call", "vs hand-written"],
                  floor(dsn, vectors[0], QUESTIONS[0], args.k, args.calls),
                  f"Each the best of 3 PL/pgSQL loops of {args.calls} calls (EXECUTE), one session, no client "
                  "round trip. The bare function is what any PL/pgSQL search returning whole rows of a view "
                  "named at call time pays before its own work: planning the statement, the function call "
                  "and its result set.")
    finally:
        if standby:
            standby.destroy()
        primary.destroy()


if __name__ == "__main__":
    main()
