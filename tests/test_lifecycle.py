"""Changing a vectorizer without downtime: alter, re-embed, cancel, and round trips that keep
the embeddings. Every change is made by a table owner who is not a superuser."""

from __future__ import annotations

import threading

import psycopg
import pytest

from conftest import role_dsn, served_inputs

OWNER = "lc_owner"
VIEW = "app.docs_embedding"
SHORT = [f"Short note {i} about PostgreSQL vacuum and visibility maps." for i in range(6)]
LONG = [" ".join(f"Long passage {i}, sentence {j}: the planner weighs index scans against sequential scans."
                 for j in range(6)) for i in range(4)]


def _owner_db(db: str) -> str:
    """The database with a non-superuser owner of schema app and its table app.docs, vectorized
    by all-minilm (384) and processed up to date. Returns the owner's DSN."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER}') "
                     f"THEN CREATE ROLE {OWNER} LOGIN; END IF; END $$")
        conn.execute(f"SELECT ai.grant_ai_usage('{OWNER}')")
        conn.execute(f"CREATE SCHEMA app AUTHORIZATION {OWNER}")
    dsn = role_dsn(db, OWNER)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.docs (id int PRIMARY KEY, body text)")
        for i, body in enumerate(SHORT + LONG):
            conn.execute("INSERT INTO app.docs VALUES (%s, %s)", (i, body))
        conn.execute("""SELECT ai.create_vectorizer('app.docs'::regclass, name => 'docs',
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            chunking => ai.chunking_recursive_character_text_splitter(200, 0),
            scheduling => ai.scheduling_none())""")
        conn.execute("CALL ai.execute_vectorizer('docs')")
    return dsn


class Searcher(threading.Thread):
    """Searches the live view without pause until stopped; keeps every result count and error."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.counts, self.errors = dsn, [], []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.counts.append(conn.execute(
                        f"SELECT count(*) FROM ai.semantic_search(NULL::{VIEW}, 'how does the planner choose', k => 5)"
                    ).fetchone()[0])
        except Exception as exc:  # collected: the test fails on it
            self.errors.append(exc)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the searcher did not stop"
        assert not self.errors, f"a search failed during the change: {self.errors[0]!r}"
        assert self.counts, "no search ran"


def _store_rows(conn) -> list[tuple]:
    return conn.execute("SELECT id, chunk_seq, chunk, embedded_md5, vector_dims(embedding) "
                        "FROM app.docs_embedding_store ORDER BY id, chunk_seq").fetchall()


def _relations(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind IN ('r', 'v') "
        "ORDER BY relname")]


def test_search_keeps_answering_while_a_new_model_is_built_and_then_takes_over(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        view_oid = conn.execute(f"SELECT '{VIEW}'::regclass::oid").fetchone()[0]
        searcher = Searcher(dsn)
        searcher.start()
        said = conn.execute("SELECT ai.alter_vectorizer('docs', embedding => ai.embedding_openai('all-minilm', 128))"
                            ).fetchone()[0]
        assert "building a new generation" in said
        status = conn.execute("SELECT next_generation FROM ai.vectorizer_status WHERE name = 'docs'").fetchone()
        assert status[0] is not None
        # Written during the build: must be in the new store when it takes over.
        conn.execute("INSERT INTO app.docs VALUES (100, 'Written while the new generation was being built.')")
        conn.execute("CALL ai.execute_vectorizer('docs (next)', 1)")
        assert {r[4] for r in _store_rows(conn)} == {384}, "search answers from the live store during the build"
        conn.execute("CALL ai.execute_vectorizer('docs')")
        searcher.finish()

        rows = _store_rows(conn)
        assert {r[4] for r in rows} == {128}
        assert 100 in {r[0] for r in rows}
        assert conn.execute(f"SELECT '{VIEW}'::regclass::oid").fetchone()[0] == view_oid
        assert conn.execute("SELECT count(*) FROM ai.vectorizer").fetchone()[0] == 1
        assert conn.execute("SELECT config->'embedding'->>'implementation' FROM ai.vectorizer WHERE name = 'docs'"
                            ).fetchone()[0] == "openai"
        assert _relations(conn) == ["docs", "docs_embedding", "docs_embedding_store"]
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0] == 0
    assert min(searcher.counts) == 5
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error, match="not building"):
        conn.execute("SELECT ai.finish_alter('docs')")   # the swap happened once, and is over


def _fingerprint(conn) -> list[tuple]:
    """The live store, exactly (embeddings as text)."""
    return conn.execute("SELECT id, chunk_seq, embedded_md5, embedding::text FROM app.docs_embedding_store "
                        "ORDER BY id, chunk_seq").fetchall()


def _cost_of_the_build(conn) -> tuple:
    """(chunks embedded, chunks reused) by the generation that has taken over 'docs'."""
    row = conn.execute("""SELECT chunks_embedded, chunks_reused, next_generation, building_for
        FROM ai.vectorizer_status WHERE name = 'docs'""").fetchone()
    assert row[2:] == (None, None), "the new generation has taken over"
    return row[:2]


def test_cancelling_a_change_leaves_the_live_vectorizer_untouched(db):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before, config = _fingerprint(conn), conn.execute("SELECT config FROM ai.vectorizer").fetchone()[0]
        conn.execute("SELECT ai.alter_vectorizer('docs', chunking => ai.chunking_recursive_character_text_splitter(60, 0))")
        conn.execute("CALL ai.execute_vectorizer('docs (next)', 1)")
        assert conn.execute("SELECT ai.cancel_alter('docs')").fetchone()[0] is True
        assert _fingerprint(conn) == before
        assert conn.execute("SELECT config FROM ai.vectorizer").fetchone()[0] == config
        assert _relations(conn) == ["docs", "docs_embedding", "docs_embedding_store"]
        conn.execute("UPDATE app.docs SET body = 'changed after the cancel' WHERE id = 0")
        conn.execute("CALL ai.execute_vectorizer('docs')")
        assert conn.execute("SELECT chunk FROM app.docs_embedding_store WHERE id = 0").fetchone()[0] == \
            "changed after the cancel"
        assert conn.execute("SELECT ai.cancel_alter('docs')").fetchone()[0] is False


def test_new_chunking_embeds_only_the_chunks_whose_text_changed(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The short notes are one chunk under either size; the long passages are cut anew.
        conn.execute("SELECT ai.alter_vectorizer('docs', chunking => ai.chunking_recursive_character_text_splitter(300, 0))")
        calls_before = served_inputs(model_server_url)
        conn.execute("CALL ai.execute_vectorizer('docs (next)')")
        embedded, reused = _cost_of_the_build(conn)
        assert reused == len(SHORT) and embedded > 0
        assert served_inputs(model_server_url) - calls_before == embedded
        worst = conn.execute("SELECT max(embedding <=> ai.ollama_embed('all-minilm', chunk)) "
                             "FROM app.docs_embedding_store").fetchone()[0]
        assert worst < 1e-4, "a reused embedding belongs to its chunk's text"


def test_reembed_embeds_every_chunk_anew(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        chunks = conn.execute("SELECT count(*) FROM app.docs_embedding_store").fetchone()[0]
        conn.execute("SELECT ai.reembed('docs')")
        conn.execute("CALL ai.execute_vectorizer('docs (next)')")
        assert _cost_of_the_build(conn) == (chunks, 0)
        assert conn.execute("SELECT count(*) FROM app.docs_embedding_store").fetchone()[0] == chunks


def test_processing_scheduling_and_name_change_in_place_without_a_model_call(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = _fingerprint(conn)
        calls_before = served_inputs(model_server_url)
        said = conn.execute("""SELECT ai.alter_vectorizer('docs', processing => '{"batch_size": 7}',
            scheduling => ai.scheduling_default(), indexing => ai.indexing_none(), new_name => 'notes')""").fetchone()[0]
        assert "building" not in said and "renamed" in said
        row = conn.execute("SELECT next_generation, schedule FROM ai.vectorizer_status WHERE name = 'notes'").fetchone()
        assert row == (None, "background")
        assert conn.execute("SELECT config->'processing'->>'batch_size' FROM ai.vectorizer").fetchone()[0] == "7"
        assert _fingerprint(conn) == before and served_inputs(model_server_url) == calls_before
        assert conn.execute("SELECT ai.alter_vectorizer('notes')").fetchone()[0] == "nothing to change"


def test_only_the_owner_may_change_a_vectorizer(db):
    _owner_db(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lc_other') "
                     "THEN CREATE ROLE lc_other LOGIN; END IF; END $$")
        conn.execute("SELECT ai.grant_ai_usage('lc_other')")
    with psycopg.connect(role_dsn(db, OWNER), autocommit=True) as conn:
        conn.execute("SELECT ai.reembed('docs')")
        gid = conn.execute("SELECT id FROM ai.vectorizer WHERE generation_of IS NOT NULL").fetchone()[0]
        assert conn.execute("SELECT owner FROM ai.vectorizer WHERE id = %s", (gid,)).fetchone()[0] == OWNER
    with psycopg.connect(role_dsn(db, "lc_other"), autocommit=True) as conn:
        for call in ("SELECT ai.alter_vectorizer('docs', new_name => 'mine')", "SELECT ai.reembed('docs')",
                     "SELECT ai.cancel_alter('docs')", "SELECT ai.finish_alter('docs')",
                     f"SELECT ai._take_over({gid})", "SELECT ai.drop_vectorizer_store('app.docs_embedding')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(call)
    with psycopg.connect(role_dsn(db, OWNER), autocommit=True) as conn:
        assert conn.execute("SELECT name FROM ai.vectorizer ORDER BY id").fetchall() == [("docs",), ("docs (next)",)]
