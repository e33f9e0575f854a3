"""Shared by the benchmarks: a throwaway stack, real text, and a table printer."""

from __future__ import annotations

import contextlib
import inspect
import pkgutil
import statistics
import tempfile
import textwrap
from pathlib import Path
from typing import Iterator

import psycopg

from pgweave.install import install
from pgweave.localdb import LocalCluster
from pgweave.services import start_model_server


@contextlib.contextmanager
def stack() -> Iterator[tuple[LocalCluster, str]]:
    """A throwaway cluster and a model server; yields (cluster, model server URL)."""
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


def passages(count: int, size: int = 450) -> list[str]:
    """Real English passages (~100 tokens each) from the docstrings of Python's standard library."""
    out: list[str] = []
    seen = set()
    for info in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in ("antigravity", "this", "idlelib", "tkinter", "turtle"):
            continue
        try:
            module = __import__(info.name)
        except Exception:  # some stdlib modules need optional system libraries
            continue
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj) or ""
            text = " ".join(doc.split())
            if len(text) < size or text in seen:
                continue
            seen.add(text)
            out.extend(textwrap.wrap(text, size)[:2])
            if len(out) >= count:
                return [p for p in out[:count]]
    return out


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def table(title: str, header: list[str], rows: list[list]) -> None:
    """Print a plain comparison table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths))
    print(f"\n{title}\n{line}\n{'  '.join('-' * w for w in widths)}")
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


__all__ = ["stack", "database", "passages", "percentile", "table", "statistics"]
