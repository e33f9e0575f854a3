"""Helpers every test file may import: DSNs, model-server counters, waiting with a deadline,
and threads whose failures fail the test."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

import psycopg

REPO = Path(__file__).resolve().parents[2]
TINY_LM = "tiny-lm"


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server, another database."""
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


def role_dsn(dsn: str, role: str) -> str:
    """The same database, connecting as another (trusted, password-less) role."""
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def served_inputs(model_server_url: str) -> float:
    """How many inputs the model server has embedded so far (from its /metrics)."""
    import httpx

    text = httpx.get(model_server_url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("pgweave_serve_inputs_embedded_total{"))


def execute_vectorizer(dsn: str, name: str, **settings: Any) -> None:
    """Drain a vectorizer's queue with CALL ai.execute_vectorizer (autocommit, as required),
    after SET ai.<name> = <value> for each setting given."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for setting, value in settings.items():
            conn.execute(f"SELECT set_config('ai.{setting}', %s, false)", (str(value),))
        conn.execute("CALL ai.execute_vectorizer(%s)", (name,))


def vec(value) -> "np.ndarray":  # noqa: F821
    """A pgvector value (Vector, ndarray or text) as a numpy array."""
    import numpy as np

    if hasattr(value, "to_numpy"):
        return value.to_numpy()
    if isinstance(value, str):
        return np.asarray(json.loads(value), dtype=np.float32)
    return np.asarray(value)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail naming ``what``
    if it never does within ``timeout`` seconds (a deadline against hanging, not a measurement)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(every)


def sql_until(dsn: str, sql: str, what: str, timeout: float = 60.0, params=None) -> Any:
    """Poll a one-value query on its own connection until it is truthy (see ``wait_until``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return wait_until(lambda: conn.execute(sql, params).fetchone()[0], what, timeout)


class CheckedThread(threading.Thread):
    """A thread whose outcome the test must collect: ``result()`` re-raises what the target
    raised, ``error()`` returns it (failing when there was none), and both fail when the thread
    is still running after the timeout. Nothing a thread does is lost to a warning."""

    def __init__(self, target: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any):
        super().__init__(name=name, daemon=True)
        self._call = (target, args, kwargs)
        self._value: Any = None
        self._exc: BaseException | None = None

    def run(self) -> None:
        """Run the target and keep its return value or exception."""
        target, args, kwargs = self._call
        try:
            self._value = target(*args, **kwargs)
        except BaseException as exc:  # handed to the test by result()/error()
            self._exc = exc

    def _finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"thread {self.name} still running after {timeout:.0f}s"

    def result(self, timeout: float = 120.0) -> Any:
        """Join, then return the target's value or re-raise its exception."""
        self._finish(timeout)
        if self._exc is not None:
            raise self._exc
        return self._value

    def error(self, timeout: float = 120.0) -> BaseException:
        """Join, then return the exception the target raised (failing when it raised none)."""
        self._finish(timeout)
        assert self._exc is not None, f"thread {self.name} was expected to fail, and returned {self._value!r}"
        return self._exc


def started(target: Callable[..., Any], *args: Any, **kwargs: Any) -> CheckedThread:
    """A CheckedThread, already started."""
    thread = CheckedThread(target, *args, **kwargs)
    thread.start()
    return thread


APP_OWNER = "bg_owner"   # the non-superuser table owner of the background_db fixture


def conn_until(conn: psycopg.Connection, sql: str, timeout: float, params=None) -> Any:
    """Poll a one-value query on ``conn`` until it is truthy (see ``wait_until``)."""
    return wait_until(lambda: conn.execute(sql, params).fetchone()[0], sql, timeout)


def declare_test_drainer(dsn: str) -> None:
    """Tell pgweave that this test drains the queues itself (by CALL, from the test): status
    then says a worker processes them, as it would for `pgweave worker`, instead of `nobody`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT ai._worker_heartbeat('pytest-drainer', NULL)")
