"""The command line: help everywhere, install, and errors scripts can trust."""

from __future__ import annotations

import psycopg
import pytest
from typer.testing import CliRunner

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


def test_install_with_an_unreachable_database_says_how_to_fix_it():
    result = runner.invoke(app, ["install", "postgresql://nobody@127.0.0.1:9/nowhere"])
    assert result.exit_code == 2
    assert "cannot connect" in result.output and "PGWEAVE_DSN" in result.output


def test_db_dsn_without_a_cluster_fails_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("PGWEAVE_LOCALDB", str(tmp_path / "none"))
    result = runner.invoke(app, ["db", "dsn"])
    assert result.exit_code == 1
    assert "pgweave db start" in result.output
