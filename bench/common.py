"""Shared by the benchmarks: a throwaway stack, the chunking both systems use, timing of the raw
model and of queries, recall, percentiles, progress lines and a markdown table printer."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plpython"))  # the engine's chunker
from pgweave_db import chunking, formatting  # noqa: E402

from pgweave.install import install
from pgweave.localdb import LocalCluster
from pgweave.services import start_model_server

# How every benchmark chunks and formats the documentation, in pgweave and in pgai alike.
CHUNK_SIZE, CHUNK_OVERLAP = 800, 100
TEMPLATE = "$title: $chunk"
CHUNKING = {"implementation": "recursive_character_text_splitter", "chunk_size": CHUNK_SIZE,
            "chunk_overlap": CHUNK_OVERLAP}
_T0 = time.perf_counter()


def say(message: str) -> None:
    """A progress line on stderr (stdout keeps only the tables), with the seconds so far."""
    print(f"[{Path(sys.argv[0]).stem} {time.perf_counter() - _T0:6.0f}s] {message}", file=sys.stderr, flush=True)


def formatted_chunks(title: str, body: str) -> list[str]:
    """The texts a vectorizer embeds for one documentation page (the engine's own code)."""
    return [formatting.format_chunk({"template": TEMPLATE}, piece, {"title": title})
            for piece in chunking.chunk(CHUNKING, body)]


def raw_seconds(url: str, requests: list[list[str]]) -> float:
    """Seconds to send these /api/embed requests one after another on one connection."""
    with httpx.Client(timeout=600) as client:
        start = time.perf_counter()
        for texts in requests:
            client.post(url + "/api/embed", json={"model": "all-minilm", "input": texts}).raise_for_status()
        return time.perf_counter() - start


def timed(conn: psycopg.Connection, sql: str, params_list: list[tuple], rounds: int) -> tuple[list[float], list[list]]:
    """Run every parameter set `rounds` times (prepared); latencies in ms and the last results."""
    latencies, results = [], []
    for _ in range(rounds):
        results = []
        for params in params_list:
            start = time.perf_counter()
            rows = conn.execute(sql, params, prepare=True).fetchall()
            latencies.append((time.perf_counter() - start) * 1000)
            results.append(rows)
    return latencies, results


def recall(results: list[list], exact: list[set]) -> str:
    """recall@k: the share of the exact top-k ids (per query; first column) the results hold."""
    found = sum(len({r[0] for r in rows} & want) for rows, want in zip(results, exact))
    return f"{found / max(1, sum(map(len, exact))):.3f}"


@contextlib.contextmanager
def stack() -> Iterator[tuple[LocalCluster, str]]:
    """A throwaway cluster and a model server; yields (cluster, model server URL).

    SIGTERM (say, from `kill` or an interrupted `make bench`) exits through the cleanup too."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pgweave-bench-")))
    cluster.start()
    try:
        with start_model_server(cluster.root.parent / f"{cluster.root.name}-serve.log") as server:
            yield cluster, server.url
    finally:
        cluster.destroy()


def database(cluster: LocalCluster, name: str, model_url: str) -> str:
    """A database with pgweave installed and ai.ollama_host set; returns its DSN."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f"""ALTER DATABASE "{name}" SET ai.ollama_host = '{model_url}'""")
    dsn = cluster.dsn(name)
    install(dsn)
    return dsn


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def table(title: str, header: list[str], rows: list[list], note: str = "") -> None:
    """Print a markdown table under a bold title (and a note below it), on stdout."""
    print(f"\n**{title}**\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    if note:
        print(f"\n{note}")
    sys.stdout.flush()


__all__ = ["CHUNKING", "CHUNK_OVERLAP", "CHUNK_SIZE", "TEMPLATE", "database", "formatted_chunks",
           "percentile", "raw_seconds", "recall", "say", "stack", "table", "timed"]
