"""Changing a vectorizer without downtime: search latency while a new generation is built, and
the build's rate against the raw model.

Corpus: pages of the SQL command reference (Debian's postgresql-doc-15), one row per page,
chunked 800/100 and embedded as '$title: $chunk' with all-minilm (384) on `pgweave serve`.
Then two changes, each built by CALL ai.execute_vectorizer in a second connection (it builds
the new generation and lets it take over) while a searcher runs ai.semantic_search without
pause on the live view:

1. a new model config: all-minilm at 128 dimensions through the OpenAI endpoint (every chunk
   embedded anew);
2. a new chunk size with the same model (only the chunks whose text changed are embedded).

Printed: search p50 / p95 / max (ms) idle and during each build, failed searches and the
fewest rows a search returned; the build's chunks embedded and reused, seconds and chunks/s,
against the raw model rate (the same texts sent straight to the model server in requests of
the engine's embedding_batch_size).

    .venv/bin/python bench/bench_lifecycle.py [--pages 30] [--idle-searches 200]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CHUNK_OVERLAP, CHUNK_SIZE, TEMPLATE, database, percentile, say, stack, table  # noqa: E402

from pgweave.corpus import postgres_docs  # noqa: E402

REQUEST = 64   # the engine's embedding_batch_size
QUERIES = ["how do I reclaim disk space", "create an index concurrently", "grant privileges on a schema",
           "listen for notifications", "copy a table to a file", "alter a column type"]
SEARCH = "SELECT count(*) FROM ai.semantic_search(NULL::docs_embedding, %s, k => 10)"


class Searcher(threading.Thread):
    """Searches the live view without pause until stopped: latencies (ms), result counts, errors."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.latencies, self.counts, self.errors = dsn, [], [], []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            i = 0
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    self.counts.append(conn.execute(SEARCH, (QUERIES[i % len(QUERIES)],)).fetchone()[0])
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                self.latencies.append((time.perf_counter() - start) * 1000)
                i += 1


def _search_row(label: str, s: Searcher) -> list:
    return [label, len(s.latencies), f"{percentile(s.latencies, 50):.1f}", f"{percentile(s.latencies, 95):.1f}",
            f"{max(s.latencies):.1f}", len(s.errors), min(s.counts) if s.counts else "-"]


def _raw_rate(url: str, texts: list[str], dimensions: int | None) -> float:
    """Texts per second sent straight to the model server's OpenAI endpoint, REQUEST per request."""
    body = {"model": "all-minilm"} | ({"dimensions": dimensions} if dimensions else {})
    with httpx.Client(timeout=600) as client:
        start = time.perf_counter()
        for i in range(0, len(texts), REQUEST):
            client.post(url + "/v1/embeddings", json=body | {"input": texts[i:i + REQUEST]}).raise_for_status()
        return len(texts) / (time.perf_counter() - start)


def _build(dsn: str, change: str) -> tuple[Searcher, dict]:
    """Start a change, build it with CALL ai.execute_vectorizer while searching; the searcher and
    the new generation's cost."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        old_id = conn.execute("SELECT id FROM ai.vectorizer WHERE name = 'docs'").fetchone()[0]
        searcher = Searcher(dsn)
        searcher.start()
        time.sleep(1)
        start = time.perf_counter()
        conn.execute(change)
        conn.execute("CALL ai.execute_vectorizer('docs')")
        seconds = time.perf_counter() - start
        searcher.stop.set()
        searcher.join()
        row = conn.execute("""SELECT id, chunks_embedded, chunks_reused, stored_chunks, next_generation
                              FROM ai.vectorizer_status WHERE name = 'docs'""").fetchone()
        if row[0] == old_id or row[4] is not None:
            raise SystemExit("the new generation did not take over")
        for q in QUERIES:   # the new model's query embeddings, cached before the next measurement
            conn.execute(SEARCH, (q,))
        texts = [r[0] for r in conn.execute(
            "SELECT d.title || ': ' || s.chunk FROM docs_embedding_store s JOIN docs d USING (id)")]
    return searcher, {"embedded": row[1], "reused": row[2], "chunks": row[3], "seconds": seconds, "texts": texts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--idle-searches", type=int, default=200)
    args = parser.parse_args()
    pages = postgres_docs(limit=args.pages)   # the SQL command reference
    with stack() as (cluster, model_url):
        dsn = database(cluster, "lifecycle", model_url)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE lifecycle SET ai.openai_base_url = '{model_url}/v1'")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text)")
            with conn.cursor().copy("COPY docs FROM STDIN") as copy:
                for i, page in enumerate(pages):
                    copy.write_row((i, page.title, page.body))
            conn.execute(f"""SELECT ai.create_vectorizer('docs'::regclass, name => 'docs', loading => ai.loading_column('body'),
                embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
                chunking => ai.chunking_recursive_character_text_splitter({CHUNK_SIZE}, {CHUNK_OVERLAP}),
                formatting => ai.formatting_python_template('{TEMPLATE}'))""")
            say(f"{len(pages)} pages: first backfill")
            conn.execute("CALL ai.execute_vectorizer('docs')")
            for q in QUERIES:   # the query embeddings are cached, idle and during the builds alike
                conn.execute(SEARCH, (q,))

        say("idle searches")
        idle = Searcher(dsn)
        idle.start()
        while len(idle.latencies) < args.idle_searches:
            time.sleep(0.1)
        idle.stop.set()
        idle.join()
        searches, builds = [_search_row("idle", idle)], []
        changes = [
            ("new model: all-minilm 128 (OpenAI endpoint)", 128,
             "SELECT ai.alter_vectorizer('docs', embedding => ai.embedding_openai('all-minilm', 128))"),
            ("new chunk size 600/100, same model", 128,
             "SELECT ai.alter_vectorizer('docs', chunking => ai.chunking_recursive_character_text_splitter(600, 100))"),
        ]
        for label, dims, change in changes:
            say(f"building: {label}")
            searcher, cost = _build(dsn, change)
            searches.append(_search_row(f"during: {label}", searcher))
            raw = _raw_rate(model_url, cost["texts"], dims)
            rate = cost["embedded"] / cost["seconds"]
            builds.append([label, cost["chunks"], cost["embedded"], cost["reused"], f"{cost['seconds']:.1f}",
                           f"{rate:.1f}", f"{raw:.1f}", f"{rate / raw:.2f}"])
        table(f"Search while a vectorizer changes ({len(pages)} documentation pages)",
              ["searches", "n", "p50 ms", "p95 ms", "max ms", "failed", "fewest rows (k=10)"], searches,
              "ai.semantic_search on the live view without pause, query embeddings cached; "
              "the build runs in another connection on the same 2-core machine.")
        table("Building the new generation",
              ["change", "chunks", "embedded", "reused", "seconds", "embedded/s", "raw model texts/s", "ratio"],
              builds, "seconds: from ai.alter_vectorizer to the take-over (CALL ai.execute_vectorizer); raw: "
              f"the same texts to /v1/embeddings, {REQUEST} per request, one connection, nothing else running.")


if __name__ == "__main__":
    main()
