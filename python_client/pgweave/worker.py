"""`pgweave worker`: drive the in-database engine from outside, to scale out across machines.

Each worker thread runs `CALL ai.execute_vectorizer(id, max_batches => 1)` on its own
connection, one batch at a time, until a call finds nothing to do; the procedure claims items
with FOR UPDATE SKIP LOCKED and per-row advisory locks, so any number of threads, processes and
machines can share a queue without double-processing or losing an item. A LISTEN on the
triggers' `ai_vectorizer` channel wakes the workers at once; a poll is the fallback when a
notification is missed.

It logs (logger ``pgweave.worker``) its start, the vectorizers it serves, every batch with its
items and chunks (the change of the vectorizer's counters in ``ai._vectorizer_progress`` while
the batch ran: exact with one worker, shared with concurrent ones) and every failure, as logfmt
or JSON lines (:func:`configure_logging`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import psycopg

from .errors import connection_failed, from_psycopg

log = logging.getLogger("pgweave.worker")

CHANNEL = "ai_vectorizer"

# Counters of one vectorizer, read around each batch to say what the batch did.
_COUNTERS = """SELECT items_processed, chunks_embedded, last_error_at, last_error
               FROM ai._vectorizer_progress WHERE vectorizer_id = %s"""


@dataclass
class WorkerStats:
    """What a worker has done so far."""

    rounds: int = 0
    calls: int = 0
    batches: int = 0
    items: int = 0
    chunks: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, items: int, chunks: int, error: str | None) -> None:
        """Count one batch (thread-safe)."""
        with self.lock:
            self.batches += 1
            self.items += items
            self.chunks += chunks
            if error:
                self.errors.append(error)


# -- logging ---------------------------------------------------------------------------------

class _Formatter(logging.Formatter):
    """One event a line: ``ts=… level=… msg=… key=value…`` (logfmt) or a JSON object."""

    def __init__(self, style: str):
        super().__init__()
        self.json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        """The record and its ``fields`` (passed as extra) as logfmt or JSON."""
        event: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "msg": record.getMessage(),
            **getattr(record, "fields", {})}
        if self.json:
            return json.dumps(event, default=str)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in event.items())


def _logfmt_value(value: Any) -> str:
    """A logfmt value: bare when it has no space, quote or '=', else quoted with escapes."""
    text = "" if value is None else str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return json.dumps(text)


def configure_logging(level: str = "info", style: str = "logfmt") -> None:
    """Send the worker's log to stderr at ``level`` as ``style`` ('logfmt' or 'json')."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Formatter(style))
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


def _event(level: int, message: str, **fields: Any) -> None:
    """Log one event with its fields."""
    log.log(level, message, extra={"fields": fields})


# -- draining --------------------------------------------------------------------------------

_SERVABLE = """
    SELECT id, name FROM ai.vectorizer
    WHERE NOT coalesce((config->'scheduling'->>'disabled')::boolean, false)
      AND pg_has_role(current_user, owner, 'MEMBER') AND (%(ids)s::int[] IS NULL OR id = ANY(%(ids)s))
    ORDER BY id"""


def vectorizers(conn: psycopg.Connection, names: list[str] | None) -> dict[int, str]:
    """Ids and names of the vectorizers to serve: the named ones (erroring on unknown names), or
    all; only those whose schedule is enabled (as pgai's worker) and that this role may process
    (a member of the owner's role, or a superuser)."""
    ids = [conn.execute("SELECT ai._vectorizer_id(%s)", (n,)).fetchone()[0] for n in names] if names else None
    return dict(conn.execute(_SERVABLE, {"ids": ids}).fetchall())


def heartbeat(conn: psycopg.Connection, names: list[str] | None) -> None:
    """Tell ai.vectorizer_status that this worker is alive (its processed_by column)."""
    ids = [conn.execute("SELECT ai._vectorizer_id(%s)", (n,)).fetchone()[0] for n in names] if names else None
    conn.execute("SELECT ai._worker_heartbeat(%s, %s)", (f"{socket.gethostname()}:{os.getpid()}", ids))


class _Drainer:
    """Runs batches from pool threads, each keeping its own connection.

    A kept connection reuses the backend's loaded Python code and prepared statements from
    one wake-up to the next; `close` ends them all.
    """

    def __init__(self, dsn: str, stats: WorkerStats):
        self.dsn = dsn
        self.stats = stats
        self.local = threading.local()
        self.connections: list[psycopg.Connection] = []
        self.lock = threading.Lock()

    def _connection(self) -> psycopg.Connection:
        """This thread's connection, opened on first use or after a failure closed it."""
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = self.local.conn = psycopg.connect(self.dsn, autocommit=True)
            with self.lock:
                self.connections.append(conn)
        return conn

    def drain(self, vectorizer_id: int, name: str) -> None:
        """Run one batch after another until a batch finds nothing to do, or two in a row fail
        (the model server is down, say: the next wake-up tries again); log each."""
        failed_before = False
        while True:
            conn = self._connection()
            try:
                before = conn.execute(_COUNTERS, (vectorizer_id,)).fetchone()
                start = time.monotonic()
                conn.execute("CALL ai.execute_vectorizer(%s, max_batches => 1)", (vectorizer_id,))
                after = conn.execute(_COUNTERS, (vectorizer_id,)).fetchone()
            except psycopg.OperationalError:
                conn.close()  # reconnect on the next wake-up
                raise
            if before is None or after is None:
                return        # dropped meanwhile
            items, chunks = after[0] - before[0], after[1] - before[1]
            error = after[3] if after[2] != before[2] else None
            seconds = round(time.monotonic() - start, 3)
            if error:
                self.stats.add(items, chunks, error)
                _event(logging.ERROR, "batch failed", vectorizer=name, items=items, chunks=chunks,
                       seconds=seconds, error=error)
                if failed_before:
                    return
                failed_before = True   # its items back off; the rest of the queue goes on
                continue
            if items == 0:
                _event(logging.DEBUG, "queue empty", vectorizer=name)
                return
            failed_before = False
            self.stats.add(items, chunks, None)
            _event(logging.INFO, "batch done", vectorizer=name, items=items, chunks=chunks,
                   seconds=seconds)

    def close(self) -> None:
        """Close every thread's connection."""
        for conn in self.connections:
            conn.close()


def run_worker(dsn: str, names: list[str] | None = None, concurrency: int = 1, once: bool = False,
               poll_interval: float = 5.0, stop: threading.Event | None = None,
               on_round: Callable[[WorkerStats], None] | None = None) -> WorkerStats:
    """Drain the queues now, then on every notification or poll, until ``stop`` is set.

    Raises :class:`pgweave.errors.ConnectionFailed` when the database cannot be reached and
    :class:`pgweave.errors.VectorizerNotFound` for an unknown name; a failing batch is logged
    and counted in the stats, and the worker goes on.
    """
    stop = stop or threading.Event()
    stats = WorkerStats()
    drainer = _Drainer(dsn, stats)
    try:
        listener = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        raise connection_failed(exc, dsn) from exc
    _event(logging.INFO, "worker started", database=listener.info.dbname, host=listener.info.host,
           concurrency=concurrency, once=once)
    served: dict[int, str] | None = None
    try:
        with listener, ThreadPoolExecutor(max_workers=max(1, concurrency),
                                          thread_name_prefix="pgweave-worker") as pool:
            listener.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                heartbeat(listener, names)
                found = vectorizers(listener, names)
                if found != served:
                    served = found
                    _event(logging.INFO, "serving", vectorizers=",".join(found.values()) or "-")
                futures = [pool.submit(drainer.drain, vid, name)
                           for vid, name in found.items() for _ in range(max(1, concurrency))]
                for future in futures:
                    try:
                        future.result()
                    except psycopg.Error as exc:  # keep serving the other vectorizers
                        error = from_psycopg(exc)
                        stats.errors.append(error.message)
                        _event(logging.ERROR, "execute_vectorizer failed", error=error.message,
                               hint=error.hint)
                stats.rounds += 1
                stats.calls += len(futures)
                if on_round:
                    on_round(stats)
                if once:
                    break
                # Wait for a trigger's NOTIFY (or the poll interval), then drain everything again.
                for _ in listener.notifies(timeout=poll_interval, stop_after=1):
                    break
    except psycopg.Error as exc:
        raise from_psycopg(exc) from exc
    finally:
        drainer.close()
    _event(logging.INFO, "worker stopped", batches=stats.batches, items=stats.items,
           chunks=stats.chunks, errors=len(stats.errors))
    return stats

