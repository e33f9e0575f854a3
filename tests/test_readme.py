"""The README's examples run as written, in the order a reader meets them.

Every ```sql, ```python and ```bash block of README.md is listed in BLOCKS by its start, with how
it runs: "keep" (committed; later blocks build on it), "undo" (SQL in a transaction rolled back
after: the example is destructive, or an alternative), "run" (Python or a shell script against
the same database), or "skip: why" (tested elsewhere, or needs what this machine lacks). A block
that is not listed fails the test, so every new example gets run. Where a block's comments state
a result (a ranking, a count), CLAIMS checks it. The only edits are the model server's address,
the database's name and DSN; generation examples get a tiny random LM served under the README's
model names (protocol, not quality).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgweave.services import start_model_server

README = Path(__file__).resolve().parent.parent / "README.md"

BLOCKS = {
    "SELECT ai.ollama_embed('all-minilm', 'PostgreSQL keeps": "keep",
    "SELECT ai.grant_ai_usage('app_user')": "keep",
    "SELECT ai.ollama_embed('all-minilm', 'hello world')": "keep",
    "SET ai.openai_base_url": "keep",
    "SELECT ai.store_secret('OPENAI_API_KEY'": "undo",
    "CREATE TABLE blog": "keep",
    "SELECT name, pending_items, failed_items": "undo",
    "-- the k nearest chunks, best first": "keep",
    "-- filter: {\"column\": value}": "keep",
    "-- the prompt a RAG call sends": "keep",
    "SELECT title, chunk FROM blog_embedding": "keep",
    "ALTER DATABASE mydb SET ai.query_cache_size": "undo",
    "CREATE TABLE blog_queries": "keep",
    "CREATE ROLE reader LOGIN;": "keep",
    "SELECT start_time, status, return_message FROM cron.job_run_details":
        "skip: pg_cron's own table, in the pg_cron database (tests/test_vectorizer_background.py)",
    "ALTER TABLE blog RENAME COLUMN contents TO body;": "undo",
    "SELECT ai.drop_vectorizer(name, drop_all => true) FROM ai.vectorizer": "undo",
    "-- once, as a superuser: where documents may be read from": "keep",
    "SELECT (s.hit).path, (s.hit).chunk": "keep",
    "-- pgai's calls, as its documentation writes them": "undo",
    "-- in place: nothing is embedded again": "keep",
    "SELECT ai.drop_vectorizer('blog_contents_embeddings');": "undo",
    # Python
    "from pgweave import Client, ai": "run",
    "import asyncio": "run",
    "import pgweave\n\ntry:": "run",
    "# migrations/env.py": "skip: alembic files; tests/test_alembic_ops.py runs a real alembic project",
    "# migrations/versions/0001_blog_search.py": "skip: as above",
    # shell
    "pip install pgweave": "skip: needs the package index; tests/test_cli.py installs the built wheel",
    "make demo": "skip: the CI runs make test; make demo is run by hand (README tour)",
    "pgweave install postgresql://": "skip: tests/test_install.py and tests/test_cli.py",
    "pgweave uninstall postgresql://": "skip: would remove pgweave under the later examples; background_db (tests/conftest.py) uninstalls",
    "pgweave serve --port 11434": "skip: port 11434 may be taken; tests/test_serve.py serves on a free port",
    "pgweave worker --dsn postgresql://… [": "skip: a synopsis; tests/test_worker.py",
    "export PGWEAVE_DSN=": "run",
    "pgweave migrate-from-pgai postgresql://": "skip: needs a pgai database; tests/test_migrate_from_pgai.py migrates a real one",
    "pgweave vectorizers show blog_contents_embeddings": "run",
    "pgweave eval load blog_queries": "skip: needs a CSV file and run ids; tests/test_eval_cli.py runs each command",
    "docker compose": "skip: no Docker engine here; tests/test_docker.py checks the files",
    "pg_basebackup -D /srv/standby": "skip: tests/test_replicas.py makes a standby so (LocalCluster.standby)",
    "-- on the publisher (wal_level = logical)": "keep",
}

# After the block starting with the key: (query, expected rows).
CLAIMS = {
    "-- in place: nothing is embedded again": [   # cancelled: one live vectorizer, as it was
        ("SELECT config->'processing'->>'batch_size', config->'embedding'->>'model' FROM ai.vectorizer "
         "WHERE name = 'blog_embedding'", [("20", "all-minilm")]),
        ("SELECT count(*) FROM ai.vectorizer WHERE generation_of IS NOT NULL", [(0,)]),
    ],
    "SELECT (s.hit).path, (s.hit).chunk": [
        ("SELECT (s.hit).path, split_part((s.hit).chunk, E'\\n', 1) FROM ai.semantic_search("
         "NULL::manual_embedding, 'how do I reclaim disk space?', k => 1) s",
         [("/usr/share/doc/postgresql-doc-15/html/sql-vacuum.html", "(section: Description)")]),
        ("SELECT chunk FROM notes_embedding",
         [("(section: Autovacuum)\n# Autovacuum\n\nThe autovacuum launcher starts workers that vacuum "
           "tables in the background.",)]),
    ],
    "ALTER TABLE blog RENAME COLUMN contents TO body;": [
        ("SELECT config->'loading'->>'column_name' FROM ai.vectorizer WHERE name = 'blog_embedding'", [("body",)]),
        ("SELECT count(*) FROM blog_embedding WHERE body IS NOT NULL", [(4,)]),
    ],
    "-- the k nearest chunks, best first": [
        ("SELECT (s.hit).title FROM ai.semantic_search(NULL::blog_embedding, 'how do I reclaim disk space?', k => 3) s"
         " WHERE s.rank = 1", [("Vacuum",)]),
        ("SELECT (s.hit).title FROM ai.hybrid_search(NULL::blog_embedding, 'notification channel', k => 3) s"
         " WHERE s.rank = 1", [("Listen and notify",)]),
    ],
    "-- pgai's calls, as its documentation writes them": [
        ("SELECT name FROM ai.vectorizer WHERE id = ai._vectorizer_id('public_blog_pgai_store')", [("blog_pgai",)]),
        ("SELECT count(*) FROM ai.chunk_text_recursively('PostgreSQL keeps the data. pgweave keeps the embeddings.',"
         " chunk_size => 30, chunk_overlap => 0)", [(2,)]),
    ],
    "-- on the publisher (wal_level = logical)": [
        ("SELECT DISTINCT tgenabled::text FROM pg_trigger WHERE tgrelid = 'blog'::regclass AND NOT tgisinternal",
         [("A",)]),
    ],
    "CREATE ROLE reader LOGIN;": [  # still as reader
        ("SELECT count(*) FROM ai.semantic_search(NULL::blog_embedding, 'cats purring', k => 5) s"
         " WHERE (s.hit).title = 'Cats'", [(0,)]),
        ("SELECT count(*) FROM blog_embedding_store WHERE chunk ILIKE '%purr%'", [(0,)]),
    ],
}


# The vectorizers drained (CALL ai.execute_vectorizer) after the block starting with the key.
DRAINED_AFTER = {
    "CREATE TABLE blog": ("blog_embedding", "blog_contents_embeddings"),
    "-- once, as a superuser: where documents may be read from": ("manual_embedding", "notes_embedding"),
}

# Printed by the block starting with the key.
PRINTS = {
    "from pgweave import Client, ai": "Vacuum",
    "import asyncio": "(1, {'id': 2}, 1)",
    "import pgweave\n\ntry:": 'vectorizer "blog_embeddings" does not exist',
    "export PGWEAVE_DSN=": "LISTEN registers the session",
    "pgweave vectorizers show blog_contents_embeddings": "processing, scheduling and indexing set",
}


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block, in order."""
    return re.findall(r"^```(sql|python|bash)\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def sql_blocks() -> list[str]:
    return [text for language, text in readme_blocks() if language == "sql"]


def kind_of(block: str) -> tuple[str, str]:
    keys = [k for k in BLOCKS if block.startswith(k)]
    assert keys, f"a README SQL block this test does not know; add it to BLOCKS:\n{block[:300]}"
    key = max(keys, key=len)
    return key, BLOCKS[key]


PASSED_OVER = {key: kind.removeprefix("skip: ") for key, kind in BLOCKS.items() if kind.startswith("skip")}


@pytest.mark.parametrize("key", list(PASSED_OVER), ids=[k.splitlines()[0][:40] for k in PASSED_OVER])
def test_readme_block_passed_over(key):
    """Each README block not run here shows in the report with its reason (-ra lists skips), and
    the test file its reason names as running it instead exists."""
    why = PASSED_OVER[key]
    for cited in re.findall(r"tests/[\w/]+\.py", why):
        assert (README.parent / cited).exists(), f"README block {key!r} is said to be run by {cited}, which is gone"
    pytest.skip(f"README block {key.splitlines()[0]!r} not run here: {why}")


def test_every_readme_block_is_listed_once():
    keys = [kind_of(text)[0] for _, text in readme_blocks()]
    assert len(keys) == len(set(keys)), "two README blocks start alike; make a BLOCKS key longer"
    assert sorted(keys) == sorted(BLOCKS), f"BLOCKS lists examples the README no longer has: {set(BLOCKS) - set(keys)}"


@pytest.fixture(scope="module")
def named_models_url(tmp_path_factory, tiny_lm_dir):
    """A model server with the tiny LM under the generative model names the README uses."""
    names = ["llama3.2", "gpt-4o-mini"]
    args = [a for n in names for a in ("--generate-model-dir", f"{n}={tiny_lm_dir}")]
    with start_model_server(tmp_path_factory.mktemp("readme") / "serve.log", extra_args=args) as server:
        yield server.url


def test_the_readme_examples_run_as_written(db, named_models_url, tmp_path, monkeypatch):
    parts = psycopg.conninfo.conninfo_to_dict(db)
    dbname = parts["dbname"]
    url = f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:{parts.get('port', 5432)}/{dbname}"
    monkeypatch.setenv("PGWEAVE_DSN", url)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {dbname} SET ai.ollama_host = '{named_models_url}'")
        conn.execute(f"ALTER DATABASE {dbname} SET ai.openai_base_url = '{named_models_url}/v1'")
        conn.execute("DROP ROLE IF EXISTS app_user; CREATE ROLE app_user")  # the README assumes it
        conn.execute("DROP ROLE IF EXISTS reader")
    try:
        with psycopg.connect(db) as conn:
            for language, block in readme_blocks():
                key, kind = kind_of(block)
                if kind.startswith("skip"):
                    print(f"[readme] passed over {key.splitlines()[0]!r}: {PASSED_OVER[key]}")
                    continue
                text = (block.replace("http://localhost:11434", named_models_url).replace("mydb", dbname)
                        .replace("postgresql://app@db/app", url))
                if language == "sql":
                    run_sql(conn, key, kind, text, block)
                else:
                    output = run_python(text, url) if language == "python" else run_shell(text, tmp_path)
                    assert PRINTS[key] in output, f"README example printed:\n{output}\n--- the block:\n{block}"
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("RESET ROLE")
            for role in ("reader", "app_user"):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


def run_sql(conn: psycopg.Connection, key: str, kind: str, sql: str, block: str) -> None:
    try:
        conn.execute(sql)
        if key in DRAINED_AFTER:  # what the background job does in a pg_cron database
            conn.commit()
            conn.autocommit = True
            for name in DRAINED_AFTER[key]:
                conn.execute("CALL ai.execute_vectorizer(%s)", (name,))
            conn.autocommit = False
        for query, expected in CLAIMS.get(key, []):
            assert conn.execute(query).fetchall() == expected, (key, query)
    except psycopg.Error as exc:
        pytest.fail(f"README example failed: {exc}\n--- the block:\n{block}", pytrace=False)
    if kind == "undo":
        conn.rollback()
    else:
        conn.execute("RESET ROLE")
        conn.commit()


def run_python(code: str, dsn: str) -> str:
    """Run a Python example (with a client at hand, as the error example assumes); its output."""
    from pgweave import Client

    out = io.StringIO()
    with Client.connect(dsn) as client, contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__", "client": client})
    return out.getvalue()


def run_shell(script: str, cwd: Path) -> str:
    """Run a shell example with the venv's pgweave first on PATH; fails on the first error."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "NO_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"README example exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout
