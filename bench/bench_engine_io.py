"""What the shipped transport costs over the bare minimum, for one backend: the engine's
embedding requests through `http.py`, against a bare `http.client` with none of its duties, on a
SYNTHETIC embedding server.

Both write each request and read its reply from the backend's own thread (PL/Python holds
Python's interpreter lock while a statement runs, so request threads waited for it: this bench
measured the gain before `http.py` was built that way). The bare way patches, for one session,
the engine's `Requests` (the embedding requests of a batch) with one that writes each request
with `http.client` and reads the reply when the engine needs it (the same requests, the same
number in flight, the same reply slicing): no pools across hosts, proxies, TLS, retries, size
bounds or cancel while waiting. It is the floor, not a transport to ship.

Interleaved rounds of `CALL ai.execute_vectorizer` over the same queue (the whole manual by
default), each checked: every chunk stored, and the stored vectors identical in both ways.

    .venv/bin/python bench/bench_engine_io.py [--rows 0] [--rounds 5] [--in-flight 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_overhead import cluster_with_pgweave, create_pgweave, reset, synthetic_server  # noqa: E402
from common import say, table  # noqa: E402

from pgweave.corpus import postgres_docs  # noqa: E402

# Run in the session before the CALL: the engine module's Requests, replaced for this backend.
OWN_THREAD = r'''
import collections, http.client, json, sys
from urllib.parse import urlsplit
engine, vectors = sys.modules["pgweave_db.engine"], sys.modules["pgweave_db.vectors"]
kept = []

class OwnThreadRequests:
    batches = 0  # the run checks that the engine used this class

    def __init__(self, emb, batch_size, vectorizer_name):
        OwnThreadRequests.batches += 1
        url = urlsplit(emb["base_url"])
        self.host, self.port, self.model = url.hostname, url.port, emb["model"]
        self.size, self.in_flight = int(batch_size), IN_FLIGHT
        self.texts, self.waiting, self.literals, self.calls = [], collections.deque(), [], 0

    def add(self, text):
        self.texts.append(text)
        if len(self.texts) >= self.size:
            self._send()

    def _send(self):
        if len(self.waiting) >= self.in_flight:
            self._read()
        conn = kept.pop() if kept else http.client.HTTPConnection(self.host, self.port, timeout=120)
        body = json.dumps({"model": self.model, "input": self.texts, "truncate": True}).encode()
        conn.request("POST", "/api/embed", body, {"Content-Type": "application/json"})
        self.waiting.append((conn, len(self.texts)))
        self.texts, self.calls = [], self.calls + 1

    def _read(self):
        conn, n = self.waiting.popleft()
        reply = conn.getresponse()
        data = reply.read()
        if reply.status != 200:
            plpy.error(f"the synthetic server answered {reply.status}")
        kept.append(conn)
        self.literals.extend(vectors.ollama_literals(data, n, False))

    def finish(self):
        if self.texts:
            self._send()
        while self.waiting:
            self._read()
        return self.literals

engine.Requests = OwnThreadRequests
'''

WAYS = ("http.py (shipped)", "bare http.client (the floor)")


def run(dsn: str, docs: list, url: str, way: str, in_flight: int) -> tuple[float, int, str]:
    """One backfill; (seconds, chunks stored, md5 of the stored vectors in key order)."""
    reset(dsn, docs, lambda conn: create_pgweave(conn, url))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT ai._python_ready()")  # the engine's modules are loaded
        conn.execute(f"SET ai.embedding_requests_in_flight = {in_flight}")
        if way == WAYS[1]:
            conn.execute("DO $own$" + OWN_THREAD.replace("IN_FLIGHT", str(in_flight)) + "$own$ LANGUAGE plpython3u")
        start = time.perf_counter()
        conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
        seconds = time.perf_counter() - start
        if way == WAYS[1]:  # the patched class did the engine's requests
            conn.execute("DO $used$\nimport sys\nassert getattr(sys.modules['pgweave_db.engine'].Requests, 'batches', 0) > 0, "
                         "'the engine did not use the patched Requests'\n$used$ LANGUAGE plpython3u")
        chunks, digest = conn.execute(
            "SELECT count(*), md5(string_agg(embedding::text, ',' ORDER BY id, chunk_seq)) "
            "FROM docs_embedding_store").fetchone()
    return seconds, chunks, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=0, help="documentation pages (0: the whole manual)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=2, help="embedding requests in flight, both ways")
    args = parser.parse_args()

    docs = postgres_docs(limit=args.rows or None, prefix=None)
    logs = Path(tempfile.mkdtemp(prefix="pgweave-engine-io-"))
    with cluster_with_pgweave("engine_io") as (_, dsn), synthetic_server(logs / "synthetic.log") as (url, _):
        rates: dict[str, list[float]] = {way: [] for way in WAYS}
        digests, counts = set(), set()
        for r in range(args.rounds):
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:  # alternate which goes first
                seconds, chunks, digest = run(dsn, docs, url, way, args.in_flight)
                rates[way].append(chunks / seconds)
                digests.add(digest)
                counts.add(chunks)
                say(f"round {r + 1}: {way}: {chunks} chunks in {seconds:.2f} s = {chunks / seconds:.0f}/s")
        if len(digests) != 1 or len(counts) != 1:
            raise SystemExit(f"the two ways stored different chunks: {counts} chunks, {len(digests)} digests")

    pairs = [own / shipped for shipped, own in zip(*rates.values())]
    table(f"One backend, `CALL ai.execute_vectorizer`, SYNTHETIC server: {len(docs)} pages, {counts.pop()} "
          f"chunks, {args.in_flight} requests in flight, {args.rounds} interleaved rounds",
          ["embedding requests", "chunks/s (median)", "chunks/s (each round)", "vs shipped (median of pairs)"],
          [[way, f"{statistics.median(rates[way]):,.0f}", " / ".join(f"{x:,.0f}" for x in rates[way]),
            "1.00×" if way == WAYS[0] else f"{statistics.median(pairs):.2f}×"] for way in WAYS],
          f"The bare way was faster in {sum(p > 1 for p in pairs)} of {len(pairs)} rounds; the stored "
          "vectors were identical both ways.")


if __name__ == "__main__":
    main()
