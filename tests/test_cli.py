"""The command line: help everywhere, install, and errors scripts can trust."""

from __future__ import annotations

import os

import psycopg
import pytest
from typer.testing import CliRunner

from pgweave_testing.helpers import role_dsn
from pgweave.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["install"], ["serve"], ["db"], ["db", "start"]])
def test_help_answers(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_install_through_the_cli(empty_db):
    result = runner.invoke(app, ["install", empty_db])
    assert result.exit_code == 0, result.output
    assert "installed" in result.output
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT ai.pgweave_version()").fetchone()[0] == "0.1.0"


def _elsewhere(dsn: str, **change: str) -> str:
    """The test server's DSN with some of its parts changed."""
    return psycopg.conninfo.make_conninfo(dsn, **change)


# Each way a connection fails, and words of the fix its hint must give.
CONNECTION_FAILURES = {
    "server-down": (lambda dsn: _elsewhere(dsn, port="9"), "start the server"),
    "unknown-database": (lambda dsn: _elsewhere(dsn, dbname="no_such_db"), "createdb no_such_db"),
    "unknown-role": (lambda dsn: _elsewhere(dsn, user="no_such_role"), "CREATE ROLE no_such_role LOGIN"),
    "malformed-dsn": (lambda dsn: "host=127.0.0.1 port=fifty", "postgresql://user@host:5432/dbname"),
}


@pytest.mark.parametrize("cause", CONNECTION_FAILURES)
@pytest.mark.parametrize("command", [["install"], ["status", "--dsn"], ["worker", "--once", "--dsn"]])
def test_each_connection_failure_exits_2_with_the_fix_for_its_cause(pg_server, cause, command):
    bad_dsn, fix = CONNECTION_FAILURES[cause]
    result = runner.invoke(app, [*command, bad_dsn(pg_server)])
    assert result.exit_code == 2, result.output
    assert "cannot connect" in result.stderr and "hint: " in result.stderr
    assert fix in result.stderr, result.stderr
    others = [f for c, (_, f) in CONNECTION_FAILURES.items() if c != cause]
    assert not any(f in result.stderr for f in others)   # one cause, one fix


def test_a_failed_connection_without_any_dsn_says_to_pass_one(monkeypatch):
    for name in ("PGWEAVE_DSN", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "9")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2
    assert "no DSN was given" in result.stderr and "PGWEAVE_DSN" in result.stderr


def test_a_non_superuser_install_says_who_can_install(pg_server, empty_db):
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS app_owner")
        conn.execute("CREATE ROLE app_owner LOGIN")
        conn.execute(f"GRANT ALL ON DATABASE {psycopg.conninfo.conninfo_to_dict(empty_db)['dbname']} TO app_owner")
    try:
        result = runner.invoke(app, ["install", role_dsn(empty_db, "app_owner")])
        assert result.exit_code == 1, result.output
        assert "permission denied" in result.stderr
        assert "as a superuser" in result.stderr and "ai.grant_ai_usage('role')" in result.stderr
        with psycopg.connect(empty_db) as conn:   # nothing half-installed is left behind
            assert conn.execute("SELECT to_regnamespace('ai')").fetchone()[0] is None
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"REVOKE ALL ON DATABASE {psycopg.conninfo.conninfo_to_dict(empty_db)['dbname']} "
                         "FROM app_owner")
            conn.execute("DROP ROLE app_owner")


def test_the_wheel_alone_installs_pgweave_into_a_database(empty_db, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "wheel"), str(repo)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "wheel").glob("pgweave-*.whl")
    unpack = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                             str(tmp_path / "site"), str(wheel)], capture_output=True, text=True)
    assert unpack.returncode == 0, unpack.stderr
    assert (tmp_path / "site" / "pgweave" / "py.typed").exists()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(tmp_path / "site")}
    run = subprocess.run([sys.executable, "-c", "import pgweave, sys; print(pgweave.__file__); "
                          "from pgweave.cli import app; sys.argv = ['pgweave', 'install', sys.argv[1]]; app()",
                          empty_db], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(str(tmp_path / "site")) and "pgweave 0.1.0 installed" in run.stdout


def test_db_dsn_without_a_cluster_fails_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PGWEAVE_LOCALDB", str(tmp_path / "none"))
    result = runner.invoke(app, ["db", "dsn"])
    assert result.exit_code == 1
    assert "pgweave db start" in result.output
