"""A database where real pgai 0.12.1 (from PyPI, its own `pgai install` and worker) made and
filled vectorizers moves to pgweave with `pgweave migrate-from-pgai`: every embedding kept,
no model called for them, the same views answering the same searches, and pgweave serving
from then on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from pgweave_testing.database import drop_database
from pgweave_testing.helpers import role_dsn

REPO = Path(__file__).resolve().parent.parent
PGAI_VENV = REPO / ".pgai-venv"
OWNER = "pgai_app_owner"
READER = "pgai_blog_reader"


def _pgai() -> Path:
    """pgai 0.12.1's CLI in .pgai-venv (bench/pgai_env.sh makes it from PyPI), or a loud skip."""
    if not (PGAI_VENV / "bin" / "pgai").exists():
        made = subprocess.run(["bash", str(REPO / "bench" / "pgai_env.sh"), str(PGAI_VENV)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip("SKIPPED LOUDLY: cannot install pgai 0.12.1 from PyPI (bench/pgai_env.sh):\n"
                        + made.stdout[-2000:] + made.stderr[-2000:])
    return PGAI_VENV / "bin" / "pgai"


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`pgweave ...` with this checkout's client."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "python_client"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "pgweave", *args], capture_output=True, text=True, env=env)


def _embed(url: str, text: str) -> str:
    """The query's embedding from the model server, as pgvector text."""
    vector = httpx.post(url + "/api/embed", json={"model": "all-minilm", "input": [text]}, timeout=60).json()
    return json.dumps(vector["embeddings"][0])


def _stores(conn) -> dict:
    """Every stored (view, key, chunk_seq) -> embedding text."""
    kept = {}
    for view, key in (("public.blog_embedding", "id::text"), ("app.note_vectors", "author || '/' || n")):
        for k, seq, emb in conn.execute(f"SELECT {key}, chunk_seq, embedding::text FROM {view}"):
            kept[(view, k, seq)] = emb
    return kept


def _searches(conn, query: str) -> list:
    """The top three of each view for a query vector."""
    return [conn.execute("SELECT id, chunk_seq FROM public.blog_embedding ORDER BY embedding <=> %s::vector, id "
                         "LIMIT 3", (query,)).fetchall(),
            conn.execute("SELECT author, n FROM app.note_vectors ORDER BY embedding <=> %s::vector LIMIT 3",
                         (query,)).fetchall()]


@pytest.fixture
def empty_pgai_db(pg_server):
    """A database with pgai 0.12.1 installed by its own `pgai install`, and no vectorizer yet."""
    pgai = _pgai()
    name = f"pgai_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        for role in (OWNER, READER):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f"CREATE ROLE {role} LOGIN")
    dsn = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    installed = subprocess.run([str(pgai), "install", "-d", dsn], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    yield dsn
    drop_database(pg_server, name)


@pytest.fixture
def pgai_db(empty_pgai_db, model_server_url):
    """The pgai database with three vectorizers of different shapes, filled by pgai's worker:
    blog (recursive chunks, template $title: $chunk, granted to a reader), app.notes (a
    non-superuser's table, composite key, no chunking, own view name), docs (character
    splitter, created after pgai's worker ran: all pending, and its schedule disabled)."""
    pgai, dsn = _pgai(), empty_pgai_db
    emb = f"ai.embedding_ollama('all-minilm', 384, base_url => '{model_server_url}')"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"""
            CREATE TABLE blog (id int PRIMARY KEY, title text, contents text);
            INSERT INTO blog SELECT i, 'Post ' || i, repeat('Sentence ' || i || ' about bread and tides. ', 12 + i)
            FROM generate_series(1, 8) i;
            SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'), embedding => {emb},
                chunking => ai.chunking_recursive_character_text_splitter(200, 20),
                formatting => ai.formatting_python_template('$title: $chunk'), grant_to => ai.grant_to('{READER}'));
            CREATE SCHEMA app AUTHORIZATION {OWNER};
            GRANT USAGE, CREATE ON SCHEMA ai TO {OWNER};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ai TO {OWNER};""")
    with psycopg.connect(role_dsn(dsn, OWNER), autocommit=True) as conn:
        conn.execute(f"""
            CREATE TABLE app.notes (author text, n int, body text, PRIMARY KEY (author, n));
            INSERT INTO app.notes SELECT a, i, a || ' wrote note ' || i FROM unnest(array['ann', 'bob']) a,
                   generate_series(1, 3) i;""")
    with psycopg.connect(dsn, autocommit=True) as conn:  # pgai lets superusers create for owners
        conn.execute(f"""SELECT ai.create_vectorizer('app.notes'::regclass, loading => ai.loading_column('body'),
            embedding => {emb}, chunking => ai.chunking_none(),
            destination => ai.destination_table(view_name => 'note_vectors', target_table => 'note_vectors_store'))""")
    worker = subprocess.run([str(pgai), "vectorizer", "worker", "-d", dsn, "--once", "--log-level", "WARN"],
                            capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stderr[-3000:]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"""CREATE TABLE docs (id int PRIMARY KEY, body text);
            INSERT INTO docs SELECT i, 'Doc ' || i || E' first part.\\n\\nsecond part of doc ' || i FROM generate_series(1, 4) i;
            SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'), embedding => {emb},
                chunking => ai.chunking_character_text_splitter(30, 0, E'\\n\\n'));
            SELECT ai.disable_vectorizer_schedule(3);""")
        assert conn.execute("SELECT count(*) FROM blog_embedding").fetchone()[0] > 8   # pgai filled it
        assert conn.execute("SELECT chunk FROM blog_embedding WHERE id = 1 LIMIT 1").fetchone()[0].startswith("Post 1: ")
    return dsn


def test_a_pgai_database_moves_over_with_every_embedding_and_the_same_searches(pgai_db, model_server_url):
    query = _embed(model_server_url, "bread and tides")
    with psycopg.connect(pgai_db) as conn:
        before, searches = _stores(conn), _searches(conn, query)
        ids = conn.execute("SELECT id, name FROM ai.vectorizer ORDER BY id").fetchall()

    # The dry run says what will happen and changes nothing.
    dry = _cli("migrate-from-pgai", pgai_db)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing changed" in dry.stdout and "Stop pgai's worker" in dry.stdout
    assert "public_blog_embedding_store" in dry.stdout and "4 pending" in dry.stdout
    with psycopg.connect(pgai_db) as conn:
        assert conn.execute("SELECT to_regclass('ai.pgai_lib_version')").fetchone()[0] is not None

    # pgai's worker has just run: the migration refuses until told it is stopped.
    refused = _cli("migrate-from-pgai", pgai_db, "--apply")
    assert refused.returncode == 1 and "worker" in refused.stderr and "--force" in refused.stderr
    done = _cli("migrate-from-pgai", pgai_db, "--apply", "--force")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "stop pgai's worker" in done.stdout

    with psycopg.connect(pgai_db, autocommit=True) as conn:
        assert conn.execute("SELECT id, name FROM ai.vectorizer ORDER BY id").fetchall() == ids  # pgai's ids, names
        assert _stores(conn) == before                       # every embedding, under the same views
        assert _searches(conn, query) == searches
        # The template's output becomes the chunk itself, reusing every embedding: no model call.
        conn.execute("CALL ai.execute_vectorizer('public_blog_embedding_store')")
        blog = conn.execute("SELECT model_calls, chunks_reused, pending_items FROM ai.vectorizer_status "
                            "WHERE name = 'public_blog_embedding_store'").fetchone()
        assert blog[0] == 0 and blog[1] > 8 and blog[2] == 0
        assert _stores(conn) == before and _searches(conn, query) == searches
        assert not conn.execute("SELECT chunk FROM blog_embedding WHERE id = 1 LIMIT 1").fetchone()[0].startswith("Post")
        # docs' items were still pending in pgai, its schedule disabled: still so; a CALL embeds them.
        assert conn.execute("SELECT pending_items, disabled FROM ai.vectorizer_status WHERE id = 3").fetchone() == (4, True)
        conn.execute("CALL ai.execute_vectorizer('public_docs_embedding_store')")
        assert conn.execute("SELECT count(*) FROM docs_embedding").fetchone()[0] == 8
        # From now on changes follow through pgweave's trigger, not pgai's.
        conn.execute("UPDATE blog SET contents = 'A wholly new text about tides.' WHERE id = 2")
        conn.execute("CALL ai.execute_vectorizer('public_blog_embedding_store')")
        assert conn.execute("SELECT chunk FROM blog_embedding WHERE id = 2").fetchall() == [
            ("A wholly new text about tides.",)]
        assert conn.execute("SELECT count(*) FROM ai_pgai._vectorizer_q_1").fetchone()[0] == 0
    # The non-superuser owner runs their own vectorizer; the grant to the reader was kept.
    with psycopg.connect(role_dsn(pgai_db, OWNER), autocommit=True) as conn:
        conn.execute("INSERT INTO app.notes VALUES ('cy', 1, 'cy wrote a note')")
        conn.execute("CALL ai.execute_vectorizer('app_note_vectors_store')")
        assert conn.execute("SELECT count(*) FROM app.note_vectors").fetchone()[0] == 7
    with psycopg.connect(pgai_db, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT ON blog TO {READER}")
    with psycopg.connect(role_dsn(pgai_db, READER)) as conn:
        assert conn.execute("SELECT count(*) FROM blog_embedding").fetchone()[0] > 8


def test_a_vectorizer_pgweave_cannot_run_stops_the_migration_before_any_change(empty_pgai_db, model_server_url):
    with psycopg.connect(empty_pgai_db, autocommit=True) as conn:
        conn.execute(f"""CREATE TABLE faq (id int PRIMARY KEY, answer text);
            SELECT ai.create_vectorizer('faq'::regclass, loading => ai.loading_column('answer'),
                embedding => ai.embedding_ollama('all-minilm', 384, base_url => '{model_server_url}'),
                chunking => ai.chunking_none(), destination => ai.destination_column('answer_embedding'))""")
    dry = _cli("migrate-from-pgai", empty_pgai_db)
    assert dry.returncode == 1 and "cannot migrate: its embedding is a column" in dry.stdout
    refused = _cli("migrate-from-pgai", empty_pgai_db, "--apply", "--force")
    assert refused.returncode == 1 and "nothing was changed" in refused.stderr
    as_owner = _cli("migrate-from-pgai", role_dsn(empty_pgai_db, OWNER), "--apply", "--force")
    assert as_owner.returncode == 1 and "connect as a superuser" in as_owner.stderr
    with psycopg.connect(empty_pgai_db) as conn:
        assert conn.execute("SELECT to_regclass('ai.pgai_lib_version') IS NOT NULL, "
                            "to_regnamespace('ai_pgai') IS NULL").fetchone() == (True, True)


def test_a_database_without_pgai_is_refused_with_what_to_do(db):
    refused = _cli("migrate-from-pgai", db)
    assert refused.returncode == 1 and "pgweave's already" in refused.stderr
