"""The operator's commands: status, wait, errors, retry, vectorizers; JSON and exit codes scripts trust."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from typer.testing import CliRunner

from pgweave_testing.helpers import declare_test_drainer, execute_vectorizer
from pgweave.cli import app

runner = CliRunner()


def _notes(db: str, rows: int, model: str = "all-minilm", max_attempts: int = 6, drained: bool = True) -> None:
    """A vectorizer on `notes` with scheduling none, drained by the test itself (unless not drained)."""
    if drained:
        declare_test_drainer(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT i, 'Note ' || i || ' is about databases.' "
                     "FROM generate_series(1, %s) i", (rows,))
        conn.execute("""SELECT ai.create_vectorizer('notes'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama(%s, 384), chunking => ai.chunking_none(),
            scheduling => ai.scheduling_none(),
            processing => ai.processing_default(batch_size => 5, max_attempts => %s))""",
                     (model, max_attempts))


def _run(db: str, *args: str, columns: int = 200):
    return runner.invoke(app, list(args), env={"PGWEAVE_DSN": db, "COLUMNS": str(columns)})


@pytest.mark.parametrize("args", [["status"], ["wait"], ["errors"], ["retry"], ["search"], ["ask"], ["vectorizers"],
                                  ["vectorizers", "create"], ["vectorizers", "show"], ["worker"]])
def test_help_answers(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_status_shows_a_table_and_json_for_scripts(db):
    _notes(db, 7)
    table = _run(db, "status")
    assert table.exit_code == 0, table.output
    [header, line] = table.stdout.splitlines()
    assert line.split()[:5] == ["notes_embedding", "syncing", "7", "0", "0"]
    details = _run(db, "status", "notes_embedding")          # one name: all its details
    assert "public.notes → public.notes_embedding" in details.output
    assert "manual" in details.output and "items processed" in details.output
    as_json = _run(db, "status", "--json")
    assert as_json.exit_code == 0
    [row] = json.loads(as_json.stdout)
    assert (row["name"], row["pending_items"], row["in_sync"]) == ("notes_embedding", 7, False)
    execute_vectorizer(db, "notes_embedding")
    [row] = json.loads(_run(db, "status", "notes_embedding", "--json").stdout)
    assert (row["pending_items"], row["stored_chunks"], row["in_sync"]) == (0, 7, True)


def test_no_vectorizers_is_not_an_error(db):
    result = _run(db, "status")
    assert result.exit_code == 0 and "no vectorizers" in result.output
    assert json.loads(_run(db, "status", "--json").stdout) == []


def test_wait_draws_progress_until_in_sync(db):
    _notes(db, 30)
    drainer = threading.Thread(target=execute_vectorizer, args=(db, "notes_embedding"))
    drainer.start()
    try:
        result = _run(db, "wait", "notes_embedding", "--timeout", "120", "--interval", "0.05")
    finally:
        drainer.join()
    assert result.exit_code == 0, result.output
    assert "notes_embedding is in sync: 30 chunk(s) stored, 0 failed item(s)" in result.stdout
    assert "━" in result.stdout            # the progress bar's final frame


def test_wait_json_prints_only_the_final_status(db):
    _notes(db, 3)
    execute_vectorizer(db, "notes_embedding")
    result = _run(db, "wait", "notes_embedding", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["in_sync"] is True


def test_wait_exits_3_when_not_in_sync_before_the_timeout(db):
    _notes(db, 4)     # nothing drains the queue
    result = _run(db, "wait", "notes_embedding", "--timeout", "0.3", "--interval", "0.1", "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["pending_items"] == 4
    assert "4 pending item(s)" in result.stderr


def test_failed_items_show_in_status_errors_and_wait_and_retry_brings_them_back(db):
    _notes(db, 3, model="no-such-model", max_attempts=1)
    execute_vectorizer(db, "notes_embedding")     # every item fails once and is parked

    status = _run(db, "status")
    assert status.exit_code == 1                  # failed items: scripts can tell
    assert "no-such-model" in status.stdout and "parked" in status.stdout
    assert "pgweave retry notes_embedding" in status.stderr

    errors = _run(db, "errors")
    assert errors.exit_code == 1 and "no-such-model" in errors.output
    full = _run(db, "errors", "--full")
    assert "hint: " in full.stdout and "all-minilm" in full.stdout     # the models the server has
    [error] = json.loads(_run(db, "errors", "notes_embedding", "--json").stdout)
    assert error["name"] == "notes_embedding" and "not available" in error["message"]

    waited = _run(db, "wait", "notes_embedding")
    assert waited.exit_code == 1 and "pgweave retry notes_embedding" in waited.stderr

    retried = _run(db, "retry", "notes_embedding", "--json")
    assert retried.exit_code == 0 and json.loads(retried.stdout) == {"notes_embedding": 3}
    assert json.loads(_run(db, "status", "--json").stdout)[0]["pending_items"] == 3


def test_errors_is_quiet_and_exits_0_without_errors(db):
    _notes(db, 1)
    result = _run(db, "errors")
    assert result.exit_code == 0 and "no errors recorded" in result.output


def test_an_unknown_vectorizer_is_a_usage_error_with_the_database_hint(db):
    _notes(db, 1)
    for args in (["status", "nope"], ["wait", "nope"], ["retry", "nope"], ["errors", "nope"],
                 ["vectorizers", "show", "nope"]):
        result = _run(db, *args)
        assert result.exit_code == 2, (args, result.output)
        assert 'vectorizer "nope" does not exist' in result.stderr
        assert "hint: existing vectorizers: notes_embedding" in result.stderr
        assert result.stdout == ""


def test_an_unreachable_database_exits_2_and_says_how_to_fix_it():
    result = runner.invoke(app, ["status", "--dsn", "postgresql://nobody@127.0.0.1:9/nowhere"])
    assert result.exit_code == 2
    assert "start the server" in result.stderr


def test_a_database_without_pgweave_exits_2_and_says_install(empty_db):
    result = _run(empty_db, "status")
    assert result.exit_code == 2
    assert "pgweave install" in result.stderr


def test_vectorizers_list_show_create_and_drop_round_trip(db, tmp_path):
    _notes(db, 2)
    listed = _run(db, "vectorizers")
    assert listed.exit_code == 0 and "all-minilm (384)" in listed.output
    [row] = json.loads(_run(db, "vectorizers", "list", "--json").stdout)
    assert row["name"] == "notes_embedding" and row["config"]["chunking"]["implementation"] == "none"

    shown = _run(db, "vectorizers", "show", "notes_embedding")
    definition = json.loads(shown.stdout)
    assert definition["source"] == '"public"."notes"' and definition["view_name"] == "notes_embedding"

    alembic = _run(db, "vectorizers", "show", "notes_embedding", "--alembic")
    assert alembic.stdout.startswith("op.create_vectorizer(\n    '\"public\".\"notes\"',")

    dropped = _run(db, "vectorizers", "drop", "notes_embedding", "--drop-all")
    assert dropped.exit_code == 0
    spec = tmp_path / "notes.json"
    spec.write_text(shown.stdout)
    created = _run(db, "vectorizers", "create", str(spec), "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["pending_items"] == 2
    again = _run(db, "vectorizers", "create", str(spec))
    assert again.exit_code == 2 and "already exists" in again.stderr

    spec.write_text(json.dumps({"source": "notes", "colour": "blue"}))
    bad = _run(db, "vectorizers", "create", str(spec))
    assert bad.exit_code == 2 and "unknown argument(s) colour" in bad.stderr


def test_status_watch_refreshes_until_interrupted(db):
    _notes(db, 20)
    env = {**os.environ, "PGWEAVE_DSN": db}
    proc = subprocess.Popen([sys.executable, "-m", "pgweave", "status", "--watch", "--json",
                             "--interval", "0.1"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first[0]["pending_items"] == 20
        execute_vectorizer(db, "notes_embedding")
        deadline = time.monotonic() + 60
        while json.loads(proc.stdout.readline())[0]["pending_items"] != 0:
            assert time.monotonic() < deadline
    finally:
        proc.send_signal(signal.SIGINT)
        proc.stdout.close()
        code = proc.wait(30)
    assert code == 0   # Ctrl-C is how a watch ends


def _blog(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""CREATE TABLE blog (id int PRIMARY KEY, lang text, contents text);
            INSERT INTO blog VALUES
             (1, 'en', 'Cats are small domesticated carnivores. They purr when content.'),
             (2, 'en', 'Rust is a systems programming language focused on memory safety.'),
             (3, 'de', 'Quarterly estimated tax payments are due in April and June.')""")
        conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none())""")
    execute_vectorizer(db, "blog_embedding")


def test_search_prints_ranked_chunks_and_json(db):
    _blog(db)
    table = _run(db, "search", "pets that purr", "--vectorizer", "blog_embedding", "-k", "2")
    assert table.exit_code == 0, table.output
    assert "id=1" in table.output and "Cats are small" in table.output
    hits = json.loads(_run(db, "search", "pets that purr", "-v", "blog_embedding", "--json").stdout)
    assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["key"] == {"id": 1}
    assert "embedding" not in hits[0]["row"] and hits[0]["row"]["lang"] == "en"
    hybrid = json.loads(_run(db, "search", "memory safety", "-v", "blog_embedding", "--hybrid", "-k", "1",
                             "--json").stdout)
    assert hybrid[0]["key"] == {"id": 2} and hybrid[0]["text_rank"] == 1
    filtered = json.loads(_run(db, "search", "pets", "-v", "blog_embedding", "--filter", '{"lang": "de"}',
                               "--json").stdout)
    assert [h["key"] for h in filtered] == [{"id": 3}]


def test_search_with_bad_input_exits_2_with_a_hint(db):
    _blog(db)
    bad_json = _run(db, "search", "pets", "-v", "blog_embedding", "--filter", "{lang")
    assert bad_json.exit_code == 2 and "--filter is not JSON" in bad_json.stderr
    bad_column = _run(db, "search", "pets", "-v", "blog_embedding", "--filter", '{"colour": "red"}')
    assert bad_column.exit_code == 2 and "colour" in bad_column.stderr and "hint: columns:" in bad_column.stderr
    missing = _run(db, "search", "pets")
    assert missing.exit_code == 2 and "--vectorizer" in missing.output


def test_ask_answers_with_sources(db):
    from pgweave_testing.helpers import TINY_LM

    _blog(db)
    result = _run(db, "ask", "When are taxes due?", "-v", "blog_embedding", "--model", TINY_LM, "-k", "2",
                  "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert set(answer) == {"answer", "sources", "prompt"} and answer["sources"][0]["key"] == {"id": 3}


def _vectorizer(db: str, name: str, rows: int = 3, model: str = "all-minilm") -> None:
    """A small table and a vectorizer called ``name`` over it, drained by the test itself."""
    declare_test_drainer(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name}_src (id int PRIMARY KEY, body text)")
        conn.execute(f"INSERT INTO {name}_src SELECT i, 'Row ' || i FROM generate_series(1, %s) i", (rows,))
        conn.execute(f"""SELECT ai.create_vectorizer('{name}_src'::regclass, name => '{name}',
            destination => '{name}', loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama(%s, 384), chunking => ai.chunking_none(),
            scheduling => ai.scheduling_none())""", (model,))


LONG_NAMES = ["blog_contents_embeddings_for_the_marketing_site",
              "customer_support_tickets_embeddings_v2", "docs"]


@pytest.mark.parametrize("columns", [80, 120])
def test_status_fits_the_terminal_with_one_line_per_vectorizer(db, columns):
    _vectorizer(db, LONG_NAMES[0])
    _vectorizer(db, LONG_NAMES[1], model="no-such-model")
    _vectorizer(db, LONG_NAMES[2])
    for name in LONG_NAMES:                      # the second fails: a current error to summarise
        execute_vectorizer(db, name)
    result = _run(db, "status", columns=columns)
    assert result.exit_code == 1                 # one vectorizer is failing
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + len(LONG_NAMES)     # a header, then one line per vectorizer
    assert all(len(line.rstrip()) <= columns for line in lines), lines
    shown = [line.split()[0] for line in lines[1:]]
    for name, cell in zip(sorted(LONG_NAMES), shown):
        assert cell == name if columns == 120 or len(name) <= 24 else (
            "…" in cell and name.startswith(cell.split("…")[0]) and name.endswith(cell.split("…")[1]))
    assert [line.split()[1] for line in lines[1:]] == ["in", "failing", "in"]   # "in sync"
    if columns == 120:                           # room for the error's start
        assert "model 'no-such" in lines[2]
    assert f"{LONG_NAMES[1]}: no batch succeeded since the last error" in result.stderr
    full = _run(db, "status", "--errors", columns=columns)
    assert "is not available" in full.stdout     # the whole text, a flag away


@pytest.mark.parametrize("columns", [80, 120])
def test_vectorizers_list_and_search_fit_the_terminal(db, columns):
    _blog(db)
    _vectorizer(db, LONG_NAMES[0])
    listed = _run(db, "vectorizers", columns=columns).stdout.splitlines()
    assert len(listed) == 3 and all(len(line.rstrip()) <= columns for line in listed)
    hits = _run(db, "search", "pets that purr", "-v", "blog_embedding", "-k", "3", columns=columns)
    lines = hits.stdout.splitlines()
    assert len(lines) == 4 and all(len(line.rstrip()) <= columns for line in lines)
    assert lines[1].split()[:3] == ["1", lines[1].split()[1], "id=1"] and "Cats are small" in lines[1]


def test_status_stops_showing_an_error_once_a_batch_succeeded(db):
    _notes(db, 4)
    with psycopg.connect(db, autocommit=True) as conn:   # the model server is unreachable for a run
        conn.execute("SET ai.ollama_host = 'http://127.0.0.1:9'")
        conn.execute("CALL ai.execute_vectorizer('notes_embedding')")
    failing = _run(db, "status")
    assert failing.exit_code == 1 and "failing" in failing.stdout and "cannot reach" in failing.stdout
    _run(db, "retry", "notes_embedding")                 # the server is back: due now, not backing off
    execute_vectorizer(db, "notes_embedding")
    recovered = _run(db, "status")
    assert recovered.exit_code == 0, recovered.output
    assert "in sync" in recovered.stdout and "cannot reach" not in recovered.stdout
    assert recovered.stderr == ""
    details = _run(db, "status", "notes_embedding")
    assert "recovered: a batch succeeded since" in details.stdout


def test_progress_counts_the_whole_backlog_from_the_database(db):
    _notes(db, 30)                                       # batches of 5
    with psycopg.connect(db, autocommit=True) as conn:   # 10 items done before anyone watches
        conn.execute("CALL ai.execute_vectorizer('notes_embedding', max_batches => 2)")
    partway = _run(db, "wait", "notes_embedding", "--timeout", "0.2", "--interval", "0.05")
    assert partway.exit_code == 3
    assert "10/30" in partway.stdout and "33%" in partway.stdout
    execute_vectorizer(db, "notes_embedding")
    done = _run(db, "wait", "notes_embedding")           # an idle, finished vectorizer: its whole backlog
    assert done.exit_code == 0 and "30/30" in done.stdout and "in sync" in done.stdout


def test_wait_fails_fast_when_nothing_processes_the_queue(db):
    _notes(db, 3, drained=False)    # scheduling none and no worker
    with psycopg.connect(db) as conn:
        processed_by = conn.execute("SELECT processed_by FROM ai.vectorizer_status").fetchone() if conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = 'ai.vectorizer_status'::regclass "
            "AND attname = 'processed_by'").fetchone() else None
    if processed_by is None:
        pytest.skip("this server's ai.vectorizer_status has no processed_by column yet (issue 14)")
    assert processed_by[0].startswith("nobody")
    waited = _run(db, "wait", "notes_embedding", "--timeout", "60")
    assert waited.exit_code == 1 and "nothing processes its queue" in waited.stderr
    assert "pgweave worker -v notes_embedding" in waited.stderr
    status = _run(db, "status")
    assert status.exit_code == 1 and "nobody" in status.stdout


def test_status_as_a_role_with_ai_usage_only(db):
    from pgweave_testing.helpers import role_dsn

    _notes(db, 2)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cli_reader') "
                     "THEN CREATE ROLE cli_reader LOGIN; END IF; END $$")
        conn.execute("SELECT ai.grant_ai_usage('cli_reader')")
        conn.execute("GRANT SELECT ON notes, notes_embedding_store TO cli_reader")
    result = _run(role_dsn(db, "cli_reader"), "status", columns=80)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[:3] == ["notes_embedding", "syncing", "2"]
