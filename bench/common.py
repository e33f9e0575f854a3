"""Shared by the benchmarks: a throwaway stack, percentiles and a markdown table printer."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import psycopg

from pgweave.install import install
from pgweave.localdb import LocalCluster
from pgweave.services import start_model_server


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


__all__ = ["stack", "database", "percentile", "table"]
