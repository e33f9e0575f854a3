"""Exit codes the CLI promises scripts, from real processes, as a non-superuser:
1 when `search` meets a model server that is down, 130 when interrupted (Ctrl-C) while
searching or while a worker waits; and `search --where` narrows the results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from pgweave_testing.fault_proxy import FaultProxy
from pgweave_testing.helpers import execute_vectorizer, sql_until, wait_until

ROWS = {1: "Cats purr when they are content.", 2: "Kittens purr too, when they are fed.",
        3: "VACUUM reclaims the space of dead tuples."}


@pytest.fixture
def searchable(db, app_role, make_vectorizer, model_server_url):
    """docs with a vectorizer whose model server sits behind a proxy the test controls; app_user
    may search it. Yields (app_user's DSN, the proxy)."""
    proxy = FaultProxy(model_server_url)
    v = make_vectorizer(db, rows=ROWS, reader="app_user",
                        model=f"ai.embedding_ollama('all-minilm', 384, base_url => '{proxy.url}')")
    execute_vectorizer(db, v.name)
    yield app_role, proxy
    proxy.close()


def _pgweave(dsn: str, *args: str, **popen) -> subprocess.Popen:
    """A `pgweave` process with PGWEAVE_DSN set to ``dsn``."""
    env = {**os.environ, "PGWEAVE_DSN": dsn, "NO_COLOR": "1", "COLUMNS": "200", "PGOPTIONS": "-c ai.http_retries=0"}
    return subprocess.Popen([sys.executable, "-m", "pgweave", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_search_with_the_model_server_down_exits_1_and_says_so(searchable):
    dsn, proxy = searchable
    proxy.close()  # the model server is down
    proc = _pgweave(dsn, "search", "a question never asked", "-v", "docs_embedding")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "cannot reach the model server" in err and "Traceback" not in err


def test_search_interrupted_while_the_model_answers_exits_130(searchable):
    dsn, proxy = searchable
    proxy.mode = "gate"  # the model server holds the query's embedding request
    proc = _pgweave(dsn, "search", "a question the model is slow to embed", "-v", "docs_embedding")
    wait_until(lambda: proxy.held == 1 or proc.poll() is not None, "the search reached the model server")
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err


def test_a_waiting_worker_interrupted_exits_130(searchable):
    dsn, _ = searchable
    env = {**os.environ, "PGWEAVE_DSN": dsn, "PGAPPNAME": "interrupted-worker"}
    proc = subprocess.Popen([sys.executable, "-m", "pgweave", "worker", "--poll-interval", "3600"], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Its listening connection has read the vectorizers and sits idle; no drain is running.
        sql_until(dsn, """SELECT bool_or(state = 'idle' AND query LIKE '%%FROM ai.vectorizer%%')
                                 AND NOT bool_or(state = 'active')
                          FROM pg_stat_activity WHERE application_name = 'interrupted-worker'""",
                  "the worker waits for notifications")
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)


def test_search_where_narrows_results_to_the_condition(searchable):
    dsn, _ = searchable
    proc = _pgweave(dsn, "search", "purring cats", "-v", "docs_embedding", "--where", "id >= 2", "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    keys = [hit["key"]["id"] if "key" in hit else hit["row"]["id"] for hit in json.loads(out)]
    assert keys and keys[0] == 2 and set(keys) == {2, 3}
