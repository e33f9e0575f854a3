"""Installing the ai schema: through pgweave install, through alembic, twice, and back."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from alembic import command

from pgweave.install import alembic_config, current_revision, engine_for, install
from pgweave.schema import code_hash, python_modules

from pgweave_testing.helpers import REPO


def _schema_snapshot(dsn: str) -> list[tuple]:
    """Every object of schema ai with its definition, to compare installs."""
    with psycopg.connect(dsn) as conn:
        return conn.execute("""
            SELECT 'function', p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid))
              FROM pg_proc p WHERE p.pronamespace = 'ai'::regnamespace AND p.prokind <> 'a'
            UNION ALL
            SELECT 'column', c.table_name || '.' || c.column_name, c.data_type
              FROM information_schema.columns c WHERE c.table_schema = 'ai'
            UNION ALL
            SELECT 'extension', extname, '' FROM pg_extension
            ORDER BY 1, 2
        """).fetchall()


def test_install_creates_extensions_schema_and_records_version(empty_db):
    assert install(empty_db) == "0.1.0"
    with psycopg.connect(empty_db) as conn:
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        assert {"vector", "plpython3u"} <= extensions
        version, chash = conn.execute("SELECT version, code_hash FROM ai.pgweave_install").fetchone()
        assert (version, chash) == ("0.1.0", code_hash())
        modules = {r[0] for r in conn.execute("SELECT name FROM ai._python_module")}
        assert modules == set(python_modules())
        # The code the database runs is the code that was installed.
        assert conn.execute("SELECT ai._load_python()").fetchone()[0] == code_hash()
    assert current_revision(empty_db) is not None


def test_install_is_safe_to_run_twice(empty_db):
    install(empty_db)
    first = _schema_snapshot(empty_db)
    install(empty_db)
    assert _schema_snapshot(empty_db) == first


def test_alembic_upgrade_head_from_migrations_folder(empty_db):
    env = {**os.environ, "PGWEAVE_DSN": empty_db}
    alembic = [sys.executable, "-m", "alembic"]
    result = subprocess.run(alembic + ["upgrade", "head"], cwd=REPO / "migrations", env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT ai.pgweave_version()").fetchone()[0] == "0.1.0"
    result = subprocess.run(alembic + ["current"], cwd=REPO / "migrations", env=env,
                            capture_output=True, text=True)
    assert "(head)" in result.stdout, result.stdout + result.stderr


def test_downgrade_to_base_then_upgrade_gives_the_same_schema(empty_db):
    install(empty_db)
    fresh = _schema_snapshot(empty_db)
    engine = engine_for(empty_db)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    engine.dispose()
    with psycopg.connect(empty_db) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'ai'::regnamespace").fetchone()[0]
        assert left == 0
    install(empty_db)
    assert _schema_snapshot(empty_db) == fresh


def test_a_backend_holding_other_code_reloads_before_running_a_function(db):
    with psycopg.connect(db, autocommit=True) as conn:
        # Pretend this backend loaded the code of another version (as after an upgrade).
        conn.execute("""DO $$ GD["pgweave_hash"] = "older" $$ LANGUAGE plpython3u""")
        conn.execute("SELECT ai.ollama_embed('all-minilm', 'reload me')")
        conn.execute("""CREATE FUNCTION pg_temp.loaded_hash() RETURNS text LANGUAGE plpython3u
                        AS $$ return GD.get("pgweave_hash") $$""")
        loaded = conn.execute("SELECT pg_temp.loaded_hash()").fetchone()
        assert loaded[0] == code_hash()


@pytest.mark.parametrize("start", ["0001", "0002", "0003"])
def test_upgrading_from_an_earlier_revision_gives_the_fresh_schema(pg_server, template_dsn, empty_db, start):
    fresh = _schema_snapshot(template_dsn)
    install(empty_db, start)
    assert current_revision(empty_db) == start
    install(empty_db)
    assert _schema_snapshot(empty_db) == fresh
