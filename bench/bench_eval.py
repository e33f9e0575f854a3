"""Retrieval quality on the PostgreSQL manual's labelled set: semantic vs full-text vs hybrid.

Each SQL command's reference page opens with a one-line purpose ("ALTER TABLE — change the
definition of a table"); the purpose is the query, its page the relevant document, and the
line is removed from the indexed text (pgweave/manual_queries.py). The pages are embedded by
the real model (all-minilm, 384 dimensions) with the demo's chunking and template, then
ai.evaluate_retrieval scores each method; hybrid is swept over its fusion weights. Each row is
a run in ai.evaluation_run; the last table compares the best hybrid with semantic search
(paired bootstrap interval).

    .venv/bin/python bench/bench_eval.py [--pages 189] [--k 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from common import database, say, stack, table  # noqa: E402

from pgweave.corpus import postgres_docs  # noqa: E402
from pgweave.evaluation import compare, evaluate, write_query_set  # noqa: E402
from pgweave.manual_queries import purpose_queries  # noqa: E402

HYBRID_GRID = [(1.0, 1.0, 60), (1.0, 0.5, 60), (1.0, 1.0, 10), (1.0, 0.5, 10), (1.0, 0.3, 10), (1.0, 2.0, 60)]


def main() -> None:
    """Load, embed, evaluate, print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=0, help="first N SQL reference pages (0: all)")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    pages, queries = purpose_queries(postgres_docs(limit=args.pages or None))
    with stack() as (cluster, url):
        dsn = database(cluster, "bench_eval", url)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE pg_docs (slug text PRIMARY KEY, title text NOT NULL, body text NOT NULL)")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO pg_docs VALUES (%s, %s, %s)", [(p.slug, p.title, p.body) for p in pages])
            write_query_set(conn, "manual_queries", queries)
            conn.execute("""SELECT ai.create_vectorizer('pg_docs'::regclass, loading => ai.loading_column('body'),
                embedding => ai.embedding_ollama('all-minilm', 384),
                chunking => ai.chunking_recursive_character_text_splitter(1000, 100),
                formatting => ai.formatting_python_template('$title: $chunk'), scheduling => ai.scheduling_none())""")
            say(f"embedding {len(pages)} pages (the demo's chunking: 1000/100, '$title: $chunk')")
            conn.execute("CALL ai.execute_vectorizer('pg_docs_embedding')")
            chunks = conn.execute("SELECT count(*) FROM pg_docs_embedding").fetchone()[0]
            conn.execute("SELECT ai.create_text_index('pg_docs_embedding')")
            conn.execute("ANALYZE pg_docs_embedding_store")
            k = args.k
            rows, runs = [], {}
            for method in ("semantic", "text"):
                say(f"evaluating {method}")
                runs[method] = evaluate(conn, "pg_docs_embedding", "manual_queries", method=method, k=k)
            for vw, tw, rrf in HYBRID_GRID:
                say(f"evaluating hybrid vector_weight={vw} text_weight={tw} rrf_k={rrf}")
                runs[("hybrid", vw, tw, rrf)] = evaluate(conn, "pg_docs_embedding", "manual_queries", method="hybrid",
                                                         k=k, vector_weight=vw, text_weight=tw, rrf_k=rrf)
            for key, run in runs.items():
                name = key if isinstance(key, str) else f"hybrid {key[1]:g}/{key[2]:g}, rrf_k {key[3]}"
                m = run.metrics
                rows.append([name, f"{m[f'ndcg@{k}']:.3f}", f"{m[f'recall@{k}']:.3f}", f"{m[f'mrr@{k}']:.3f}",
                             f"{m[f'hit_rate@{k}']:.3f}", f"{m['latency_ms_p50']:.1f}", str(run.id)])
            table(f"nDCG@{k} on the manual's labelled set: {len(queries)} queries over {len(pages)} pages "
                  f"({chunks} chunks), all-minilm 384",
                  ["method (hybrid: vector/text weight)", f"nDCG@{k}", f"recall@{k}", f"MRR@{k}", f"hit@{k}",
                   "p50 ms", "run"], rows,
                  "p50 ms: one evaluated query, end to end in the database (the query embedding cached after "
                  "the first method).")
            best = max((r for key, r in runs.items() if not isinstance(key, str)), key=lambda r: r.ndcg)
            diff = [c for c in compare(conn, runs["semantic"].id, best.id) if c["metric"] == f"ndcg@{k}"][0]
            vs_text = [c for c in compare(conn, runs["text"].id, best.id) if c["metric"] == f"ndcg@{k}"][0]
            table(f"best hybrid (run {best.id}) against semantic and full-text, nDCG@{k}, paired bootstrap",
                  ["against", "difference", "95% CI", "p", "better/worse queries"],
                  [[name, f"{c['difference']:+.3f}", f"{c['ci_low']:+.3f} .. {c['ci_high']:+.3f}",
                    f"{c['p_value']:.3f}", f"{c['better']}/{c['worse']}"]
                   for name, c in (("semantic", diff), ("full-text", vs_text))])


if __name__ == "__main__":
    main()
