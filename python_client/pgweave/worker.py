"""`pgweave worker`: drive the in-database engine from outside, to scale out across machines.

Each worker thread runs `CALL ai.execute_vectorizer(id)` on its own connection; the
procedure claims items with FOR UPDATE SKIP LOCKED and per-row advisory locks, so any
number of threads, processes and machines can share a queue without double-processing or
losing an item. A LISTEN on the triggers' `ai_vectorizer` channel wakes the workers at
once; a poll is the fallback when a notification is missed.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import psycopg

log = logging.getLogger("pgweave.worker")

CHANNEL = "ai_vectorizer"


@dataclass
class WorkerStats:
    """What a worker has done so far."""

    rounds: int = 0
    calls: int = 0
    errors: list[str] = field(default_factory=list)


def vectorizer_ids(conn: psycopg.Connection, names: list[str] | None) -> list[int]:
    """Ids of the named vectorizers (all when no names), erroring on unknown names."""
    if not names:
        return [r[0] for r in conn.execute("SELECT id FROM ai.vectorizer ORDER BY id")]
    return [conn.execute("SELECT ai._vectorizer_id(%s)", (n,)).fetchone()[0] for n in names]


class _Drainer:
    """Runs the procedure from pool threads, each keeping its own connection.

    A kept connection reuses the backend's loaded Python code and prepared statements from
    one wake-up to the next; `close` ends them all.
    """

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.local = threading.local()
        self.connections: list[psycopg.Connection] = []
        self.lock = threading.Lock()

    def drain(self, vectorizer_id: int) -> None:
        """Run the procedure until the queue has nothing claimable for this thread."""
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = self.local.conn = psycopg.connect(self.dsn, autocommit=True)
            with self.lock:
                self.connections.append(conn)
        try:
            conn.execute("CALL ai.execute_vectorizer(%s)", (vectorizer_id,))
        except psycopg.OperationalError:
            conn.close()  # reconnect on the next wake-up
            raise

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


def run_worker(dsn: str, names: list[str] | None = None, concurrency: int = 1, once: bool = False,
               poll_interval: float = 5.0, stop: threading.Event | None = None,
               on_round: Callable[[WorkerStats], None] | None = None) -> WorkerStats:
    """Drain the queues now, then on every notification or poll, until ``stop`` is set."""
    stop = stop or threading.Event()
    stats = WorkerStats()
    drainer = _Drainer(dsn)
    try:
        with psycopg.connect(dsn, autocommit=True) as listener, \
                ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="pgweave-worker") as pool:
            listener.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                ids = vectorizer_ids(listener, names)
                futures = [pool.submit(drainer.drain, vid) for vid in ids for _ in range(max(1, concurrency))]
                for future in futures:
                    try:
                        future.result()
                    except psycopg.Error as exc:  # keep serving the other vectorizers
                        stats.errors.append(str(exc).strip())
                        log.error("execute_vectorizer failed: %s", str(exc).strip())
                stats.rounds += 1
                stats.calls += len(futures)
                if on_round:
                    on_round(stats)
                if once:
                    break
                # Wait for a trigger's NOTIFY (or the poll interval), then drain everything again.
                for _ in listener.notifies(timeout=poll_interval, stop_after=1):
                    break
    finally:
        drainer.close()
    return stats
