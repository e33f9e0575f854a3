"""Fixtures for PostgreSQL: the server, a fresh database per test, pg_cron's database, roles.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from pgweave.install import install
from pgweave.localdb import LocalCluster, LocalDBError

from .helpers import APP_OWNER, REPO, role_dsn, with_dbname

TEMPLATE_DB = "pgweave_template"
SERVER_LOG: list[Path] = []  # the native cluster's log file, for tests that read it


def _docker_engine_answers() -> bool:
    """True when a Docker engine answers a ping."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


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


@pytest.fixture(scope="session")
def template_dsn(pg_server) -> str:
    """A database with the ai schema installed, used as the template of every test database."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    dsn = with_dbname(pg_server, TEMPLATE_DB)
    install(dsn, background=False)  # a scheduler connected to it would block CREATE DATABASE ... TEMPLATE
    return dsn


_counter = itertools.count()


def _fresh_name(prefix: str) -> str:
    """A database name no other test or session uses."""
    return f"{prefix}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"


@contextmanager
def _fresh_database(pg_server: str, prefix: str, template: str | None = None,
                    settings: dict[str, str] | None = None) -> Iterator[str]:
    """A new database (from ``template``, with database-level ``settings``), dropped after."""
    name = _fresh_name(prefix)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        for setting, value in (settings or {}).items():
            conn.execute(f"ALTER DATABASE {name} SET {setting} = '{value}'")
    yield with_dbname(pg_server, name)
    drop_database(pg_server, name)


def drop_database(pg_server: str, name: str) -> None:
    """Drop a test database, and the pg_cron jobs a test's `pgweave install` scheduled for it
    (they would fail every minute and take pg_cron's job slots from the other databases')."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cron_db,)).fetchone():
            with psycopg.connect(with_dbname(pg_server, cron_db), autocommit=True) as cron:
                if cron.execute("SELECT to_regclass('cron.job') IS NOT NULL").fetchone()[0]:
                    cron.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s", (name,))
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(pg_server, template_dsn, model_server_url) -> Iterator[str]:
    """DSN of a fresh database with pgweave installed and ai.ollama_host set to the test server."""
    with _fresh_database(pg_server, "t", TEMPLATE_DB, {"ai.ollama_host": model_server_url,
                                                       "ai.openai_base_url": model_server_url + "/v1"}) as dsn:
        yield dsn


@pytest.fixture
def empty_db(pg_server) -> Iterator[str]:
    """DSN of a fresh database without pgweave, for install tests."""
    with _fresh_database(pg_server, "e") as dsn:
        yield dsn


@pytest.fixture
def app_role(db) -> Iterator[str]:
    """DSN of `db` as `app_user`: a login role that is not a superuser, granted ai usage and
    allowed to create tables in public (so it can own a source table and its vectorizer)."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS app_user; CREATE ROLE app_user LOGIN")
        conn.execute("SELECT ai.grant_ai_usage('app_user')")
        conn.execute("GRANT CREATE ON SCHEMA public TO app_user")
    dsn = role_dsn(db, "app_user")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
    yield dsn
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP OWNED BY app_user CASCADE; DROP ROLE app_user")


@pytest.fixture(scope="session")
def cron_db(pg_server, model_server_url) -> str:
    """The database pg_cron runs jobs in (cron.database_name), with pgweave and pg_cron installed."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        name = conn.execute("SHOW cron.database_name").fetchone()[0]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    dsn = with_dbname(pg_server, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute(f"""ALTER DATABASE "{name}" SET ai.ollama_host = '{model_server_url}'""")
    install(dsn, background=False)
    return dsn


@pytest.fixture(scope="session")
def background_db(pg_server, model_server_url) -> Iterator[str]:
    """An application database that is not pg_cron's, installed by a superuser with background
    processing (its scheduler runs from pg_cron's database), and a table owner who is not a
    superuser: the role APP_OWNER, granted ai usage, owning schema `app`. Yields the superuser
    DSN; `role_dsn(dsn, APP_OWNER)` connects as the owner."""
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
    dsn = with_dbname(pg_server, name)
    install(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SELECT ai.grant_ai_usage('{APP_OWNER}')")
        conn.execute(f"CREATE SCHEMA app AUTHORIZATION {APP_OWNER}")
    yield dsn
    uninstall(dsn, drop_stores=True)
    drop_database(pg_server, name)
