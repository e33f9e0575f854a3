"""A pgai user's SQL runs here as pgai documents it: by a table owner who is not a superuser,
in a database that is not pg_cron's (the `db` fixture: no background processing)."""

from __future__ import annotations

import psycopg
import pytest

from pgweave_testing.helpers import role_dsn

OWNER = "pgai_user"


@pytest.fixture
def owner(db) -> str:
    """A non-superuser with ai usage, owning schema blog_app, and a blog table with two posts."""
    with psycopg.connect(db, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (OWNER,)).fetchone():
            conn.execute(f"CREATE ROLE {OWNER} LOGIN")
        for role in ("pgai_reader", "pgai_other"):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"SELECT ai.grant_ai_usage('{OWNER}')")
        conn.execute(f"CREATE SCHEMA blog_app AUTHORIZATION {OWNER}")
    dsn = role_dsn(db, OWNER)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
        conn.execute("""CREATE TABLE blog_app.blog (id int PRIMARY KEY, title text, contents text);
                        INSERT INTO blog_app.blog VALUES
                          (1, 'Sourdough', 'Wild yeast leavens the bread over a long, slow rise.'),
                          (2, 'Tides', 'The moon pulls the oceans, and the tides follow it.')""")
    return dsn


def _create(conn, **extra: str) -> int:
    """pgai's documented create_vectorizer call on the blog (scheduling none, as pgai's default without TimescaleDB)."""
    args = {"loading": "ai.loading_column('contents')", "embedding": "ai.embedding_ollama('all-minilm', 384)",
            "destination": "ai.destination_table('blog_contents_embeddings')",
            "scheduling": "ai.scheduling_none()", "indexing": "ai.indexing_none()", **extra}
    listed = ", ".join(f"{k} => {v}" for k, v in args.items())
    return conn.execute(f"SELECT ai.create_vectorizer('blog_app.blog'::regclass, {listed})").fetchone()[0]


def test_pgais_default_name_finds_the_vectorizer_and_the_view_name_still_does(owner):
    with psycopg.connect(owner, autocommit=True) as conn:
        vid = _create(conn)
        pgai_name = "blog_app_blog_contents_embeddings_store"   # <store schema>_<store table>
        assert conn.execute("SELECT ai._vectorizer_id(%s)", (pgai_name,)).fetchone()[0] == vid
        assert conn.execute("SELECT ai._vectorizer_id('blog_contents_embeddings')").fetchone()[0] == vid
        conn.execute("CALL ai.execute_vectorizer(%s)", (pgai_name,))
        assert conn.execute("SELECT count(*) FROM blog_app.blog_contents_embeddings").fetchone()[0] == 2


def test_queue_pending_takes_pgais_exact_count_and_the_queue_shows_loading_retries(owner):
    with psycopg.connect(owner, autocommit=True) as conn:
        vid = _create(conn)
        assert conn.execute("SELECT ai.vectorizer_queue_pending(%s, exact_count => true)", (vid,)).fetchone()[0] == 2
        assert conn.execute("SELECT ai.vectorizer_queue_pending(%s, exact => true)", (vid,)).fetchone()[0] == 2
        assert conn.execute("SELECT ai.vectorizer_queue_pending(%s)", (vid,)).fetchone()[0] == 2
        # pgai's docs: SELECT ... FROM ai._vectorizer_q_<id> WHERE loading_retries > 0
        conn.execute(f"UPDATE ai._vectorizer_q_{vid} SET _attempts = 2 WHERE id = 1")
        assert conn.execute(f"SELECT id, loading_retries FROM ai._vectorizer_q_{vid} "
                            "WHERE loading_retries > 0").fetchall() == [(1, 2)]


def test_vectorizer_errors_id_is_the_vectorizers_id_as_in_pgai(owner):
    with psycopg.connect(owner, autocommit=True) as conn:
        vid = _create(conn, embedding="ai.embedding_ollama('no-such-model', 384)")
        conn.execute("CALL ai.execute_vectorizer(%s)", (vid,))   # fails, recorded, items kept
        rows = conn.execute("SELECT id, message, details, recorded, error_id FROM ai.vectorizer_errors "
                            "WHERE id = %s", (vid,)).fetchall()
    assert rows and all(r[0] == vid for r in rows)
    assert "no-such-model" in rows[0][1] and rows[0][4] is not None


def test_status_has_pgais_embedding_column_and_disabled(owner):
    with psycopg.connect(owner, autocommit=True) as conn:
        vid = _create(conn)
        assert conn.execute("SELECT embedding_column, disabled FROM ai.vectorizer_status WHERE id = %s",
                            (vid,)).fetchone() == ("embedding", False)


def test_grant_to_gives_the_named_roles_the_view_and_no_one_else(owner, db):
    with psycopg.connect(owner, autocommit=True) as conn:
        assert conn.execute("SELECT ai.grant_to('pgai_reader', 'pgai_reader')").fetchone()[0] == ["pgai_reader"]
        _create(conn, grant_to="ai.grant_to('pgai_reader')")
        conn.execute("GRANT USAGE ON SCHEMA blog_app TO pgai_reader, pgai_other")
        conn.execute("GRANT SELECT ON blog_app.blog TO pgai_reader, pgai_other")
        conn.execute("CALL ai.execute_vectorizer('blog_contents_embeddings')")
    with psycopg.connect(role_dsn(db, "pgai_reader")) as conn:
        assert conn.execute("SELECT count(*) FROM blog_app.blog_contents_embeddings").fetchone()[0] == 2
    with psycopg.connect(role_dsn(db, "pgai_other")) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM blog_app.blog_contents_embeddings")


def test_in_database_chunkers_split_as_pgai_documents(owner):
    text = "Para one is here.\n\nPara two follows it.\n\nPara three ends."
    with psycopg.connect(owner) as conn:
        rows = conn.execute("SELECT seq, chunk FROM ai.chunk_text(%s, chunk_size => 25, chunk_overlap => 0)",
                            (text,)).fetchall()
        assert rows == [(0, "Para one is here."), (1, "Para two follows it."), (2, "Para three ends.")]
        rows = conn.execute("""SELECT seq, chunk FROM ai.chunk_text_recursively(%s, chunk_size => 20,
                               chunk_overlap => 0, separators => array[E'\\n\\n', ' '])""", (text,)).fetchall()
        assert [r[0] for r in rows] == list(range(len(rows))) and all(len(r[1]) <= 20 for r in rows)
        assert " ".join(r[1] for r in rows).split() == text.split()
        assert conn.execute("SELECT count(*) FROM ai.chunk_text(NULL)").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="chunk_overlap"):
            conn.execute("SELECT * FROM ai.chunk_text('x', chunk_size => 100, chunk_overlap => 90)")


@pytest.mark.parametrize("call, says, hint", [
    ("SELECT ai.destination_column('embedding')", "into a column of the source table", "ai.chunking_none()"),
    ("SELECT ai.scheduling_timescaledb()", "needs the timescaledb extension", "ai.scheduling_default()"),
    ("SELECT ai.indexing_diskann()", "needs the vectorscale extension", "ai.indexing_hnsw()"),
    ("SELECT ai.openai_tokenize('text-embedding-3-small', 'hello')", "tiktoken", "client"),
    ("SELECT ai.openai_detokenize('text-embedding-3-small', array[1, 2])", "tiktoken", "client"),
])
def test_what_pgweave_does_not_do_is_refused_with_the_pgweave_way(owner, call, says, hint):
    with psycopg.connect(owner) as conn, pytest.raises(psycopg.errors.FeatureNotSupported) as caught:
        conn.execute(call)
    assert says in caught.value.diag.message_primary
    assert hint in caught.value.diag.message_hint
    assert not caught.value.diag.message_primary.startswith("plpy")


def test_ollama_model_lists_have_pgais_families_columns(owner):
    with psycopg.connect(owner) as conn:
        models = conn.execute("SELECT name, families, parent_model FROM ai.ollama_list_models()").fetchall()
        assert any(name.startswith("all-minilm") for name, _, _ in models)
        conn.execute("SELECT families FROM ai.ollama_ps()").fetchall()  # the column exists


def test_openai_embed_sends_token_ids_as_pgai_does_and_a_server_that_refuses_them_says_so(owner, model_server_url):
    with psycopg.connect(owner) as conn:
        base = f"{model_server_url}/v1"
        text = conn.execute("SELECT vector_dims(ai.openai_embed('all-minilm', 'hello', base_url => %s))",
                            (base,)).fetchone()[0]
        assert text == 384   # a text still takes the text form
        assert conn.execute("SELECT ai.openai_embed('all-minilm', NULL::int[], base_url => %s)",
                            (base,)).fetchone()[0] is None
        # `pgweave serve`, like Ollama, refuses token ids (its vocabulary is not OpenAI's): the
        # ids reached it as an array, and its answer comes back without PL/Python's prefix.
        with pytest.raises(psycopg.Error, match="invalid input type") as caught:
            conn.execute("SELECT ai.openai_embed('all-minilm', ARRAY[15339, 1917], base_url => %s)", (base,))
        assert not caught.value.diag.message_primary.startswith("plpy")


def test_select_execute_vectorizer_says_to_call_it(owner):
    with psycopg.connect(owner) as conn, pytest.raises(psycopg.errors.WrongObjectType) as caught:
        conn.execute("SELECT ai.execute_vectorizer(1)")
    assert "CALL" in caught.value.diag.message_hint
