"""Declaring vectorizers: both call forms, keys of every shape, names, owners, dropping."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from pgweave_testing.helpers import execute_vectorizer, role_dsn, vec

BLOG = """
CREATE TABLE blog (id int PRIMARY KEY, title text NOT NULL, contents text);
INSERT INTO blog VALUES
 (1, 'Cats', 'Cats are small domesticated carnivores. They purr when content and sleep most of the day.'),
 (2, 'Rust', 'Rust is a systems programming language focused on memory safety without garbage collection.'),
 (3, 'Tax', 'Quarterly estimated tax payments are due in April, June, September and January.');
"""


def _setup(dsn: str, sql: str = BLOG) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


def test_2024_call_form_with_destination_and_the_documented_query(db):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""SELECT ai.create_vectorizer('blog'::regclass,
            destination => 'blog_contents_embeddings',
            embedding   => ai.embedding_ollama('all-minilm', 384),
            chunking    => ai.chunking_recursive_character_text_splitter('contents'))""")
    execute_vectorizer(db, "blog_contents_embeddings")
    with psycopg.connect(db) as conn:
        rows = conn.execute("""
            SELECT b.title, be.chunk, be.embedding <=> ai.ollama_embed('all-minilm', 'pets that purr') AS distance
            FROM blog_contents_embeddings be JOIN blog b ON b.id = be.id
            ORDER BY distance LIMIT 3""").fetchall()
        assert conn.execute("SELECT to_regclass('blog_contents_embeddings_store') IS NOT NULL").fetchone()[0]
    assert [r[0] for r in rows][0] == "Cats"
    assert len(rows) == 3


def test_current_call_form_with_loading_and_formatting(db):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""SELECT ai.create_vectorizer('blog'::regclass,
            loading     => ai.loading_column('contents'),
            embedding   => ai.embedding_ollama('all-minilm', 384),
            chunking    => ai.chunking_recursive_character_text_splitter(800, 400),
            formatting  => ai.formatting_python_template('$title: $chunk'))""")
    execute_vectorizer(db, "blog_embedding")
    with psycopg.connect(db) as conn:
        chunk, title = conn.execute("SELECT chunk, title FROM blog_embedding WHERE id = 2").fetchone()
        # The chunk is the raw text; the embedding is of the formatted text.
        assert chunk.startswith("Rust is") and title == "Rust"
        same = conn.execute("""SELECT embedding <=> ai.ollama_embed('all-minilm', 'Rust: ' || chunk)
                               FROM blog_embedding WHERE id = 2""").fetchone()[0]
    assert same < 1e-4


@pytest.mark.parametrize("ddl,rows", [
    ("CREATE TABLE docs (tenant int, slug text, body text, PRIMARY KEY (tenant, slug))",
     "INSERT INTO docs VALUES (1, 'a', 'alpha text'), (2, 'a', 'beta text')"),
    ("CREATE TABLE docs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text)",
     "INSERT INTO docs (body) VALUES ('alpha text'), ('beta text')"),
    ("CREATE TABLE docs (code varchar(10) PRIMARY KEY, body text)",
     "INSERT INTO docs VALUES ('x-1', 'alpha text'), ('y''2', 'beta text')"),
])
def test_composite_and_non_integer_keys(db, ddl, rows):
    _setup(db, ddl + ";" + rows)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
                        embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none())""")
    execute_vectorizer(db, "docs_embedding")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM docs_embedding").fetchone()[0] == 2
        conn.execute("UPDATE docs SET body = 'gamma text' WHERE body = 'beta text'")
        conn.commit()
    execute_vectorizer(db, "docs_embedding")
    with psycopg.connect(db) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT chunk FROM docs_embedding")) == ["alpha text", "gamma text"]


def test_odd_identifiers(db):
    _setup(db, """CREATE SCHEMA "Odd Schema";
        CREATE TABLE "Odd Schema"."My Docs" ("Key Col" int PRIMARY KEY, "Body Text" text, "x'y" text);
        INSERT INTO "Odd Schema"."My Docs" VALUES (1, 'hello there', 'q');""")
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn, match="unknown column"):
            conn.execute("""SELECT ai.create_vectorizer('"Odd Schema"."My Docs"'::regclass,
                loading => ai.loading_column('Body Text'), embedding => ai.embedding_ollama('all-minilm', 384),
                formatting => ai.formatting_python_template('$nope: $chunk'))""")
        conn.execute("""SELECT ai.create_vectorizer('"Odd Schema"."My Docs"'::regclass,
            name => 'odd one', loading => ai.loading_column('Body Text'),
            embedding => ai.embedding_ollama('all-minilm', 384))""")
    execute_vectorizer(db, "odd one")
    with psycopg.connect(db) as conn:
        row = conn.execute('SELECT "Key Col", chunk, "x\'y" FROM "Odd Schema"."My Docs_embedding"').fetchone()
    assert row == (1, "hello there", "q")


def test_table_without_primary_key_is_refused(db):
    _setup(db, "CREATE TABLE nokey (body text)")
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.errors.InvalidTableDefinition) as info:
            conn.execute("""SELECT ai.create_vectorizer('nokey'::regclass, loading => ai.loading_column('body'),
                            embedding => ai.embedding_ollama('all-minilm', 384))""")
    assert "no primary key" in info.value.diag.message_primary
    assert "ADD PRIMARY KEY" in info.value.diag.message_hint


@pytest.mark.parametrize("args,error", [
    ("loading => ai.loading_column('nope'), embedding => ai.embedding_ollama('all-minilm', 384)", "does not exist"),
    ("loading => ai.loading_column('contents')", "embedding is required"),
    ("loading => ai.loading_column('contents'), embedding => ai.embedding_ollama('all-minilm', 0)", "dimensions"),
    ("embedding => ai.embedding_ollama('all-minilm', 384)", "no column to embed"),
    ("loading => ai.loading_column('contents'), embedding => ai.embedding_ollama('all-minilm', 384),"
     " chunking => ai.chunking_recursive_character_text_splitter(100, 200)", "chunk_overlap"),
])
def test_bad_declarations_say_what_to_fix(db, args, error):
    _setup(db)
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"SELECT ai.create_vectorizer('blog'::regclass, {args})")
    assert error in info.value.diag.message_primary
    assert info.value.diag.message_hint


def test_several_vectorizers_share_a_table_and_names_are_unique(db):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        for name, template in [("by_body", "$chunk"), ("by_title", "$title")]:
            conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, name => %s, destination => %s,
                loading => ai.loading_column('contents'), embedding => ai.embedding_ollama('all-minilm', 384),
                formatting => ai.formatting_python_template(%s))""", (name, name, template))
        with pytest.raises(psycopg.errors.DuplicateObject):
            conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, name => 'by_body', destination => 'other',
                loading => ai.loading_column('contents'), embedding => ai.embedding_ollama('all-minilm', 384))""")
        again = conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, name => 'by_body', destination => 'other',
                loading => ai.loading_column('contents'), embedding => ai.embedding_ollama('all-minilm', 384),
                if_not_exists => true)""").fetchone()[0]
        assert again == conn.execute("SELECT id FROM ai.vectorizer WHERE name = 'by_body'").fetchone()[0]
    execute_vectorizer(db, "by_body")
    execute_vectorizer(db, "by_title")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM by_body").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM by_title").fetchone()[0] == 3


def test_only_the_owner_may_create_and_grant_to_lets_roles_read(db):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS outsider; CREATE ROLE outsider LOGIN")
        conn.execute("DROP ROLE IF EXISTS reader; CREATE ROLE reader LOGIN")
        conn.execute("SELECT ai.grant_ai_usage('outsider'), ai.grant_ai_usage('reader')")
        conn.execute("GRANT SELECT ON blog TO reader")
    try:
        with psycopg.connect(role_dsn(db, "outsider")) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only the owner"):
                conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'),
                                embedding => ai.embedding_ollama('all-minilm', 384))""")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'),
                            embedding => ai.embedding_ollama('all-minilm', 384), grant_to => ARRAY['reader'])""")
        execute_vectorizer(db, "blog_embedding")
        with psycopg.connect(role_dsn(db, "reader")) as conn:
            assert conn.execute("SELECT count(*) FROM blog_embedding").fetchone()[0] == 3
            # The store is always protected by the source's rights: reader may read blog, so it
            # reads every chunk (tests/reliability/test_security.py: column grants, revokes, RLS).
            assert conn.execute("SELECT count(*) FROM blog_embedding_store").fetchone()[0] == 3
            assert conn.execute("""SELECT relrowsecurity FROM pg_class
                                   WHERE oid = 'blog_embedding_store'::regclass""").fetchone()[0] is True
        with psycopg.connect(role_dsn(db, "outsider")) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM blog_embedding")
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY outsider, reader; DROP ROLE outsider; DROP ROLE reader")


def _leftovers(conn, vid: int) -> list:
    return conn.execute("""
        SELECT 'catalog' FROM ai.vectorizer WHERE id = %(v)s
        UNION ALL SELECT relname FROM pg_class WHERE relname LIKE '%%vectorizer_q%%' || %(v)s
        UNION ALL SELECT proname FROM pg_proc WHERE proname = '_vectorizer_src_trg_' || %(v)s
        UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '_vectorizer_src_trg_' || %(v)s || '%%'
    """, {"v": vid}).fetchall()


def test_drop_vectorizer_keeps_or_drops_the_store(db):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        vid = conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'),
                              embedding => ai.embedding_ollama('all-minilm', 384))""").fetchone()[0]
        conn.execute("SELECT ai.drop_vectorizer('blog_embedding')")
        assert _leftovers(conn, vid) == []
        assert conn.execute("SELECT to_regclass('blog_embedding_store') IS NOT NULL").fetchone()[0]
        conn.execute("DROP VIEW blog_embedding; DROP TABLE blog_embedding_store")
        vid = conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'),
                              embedding => ai.embedding_ollama('all-minilm', 384))""").fetchone()[0]
        conn.execute("SELECT ai.drop_vectorizer(%s, drop_all => true)", (vid,))
        assert _leftovers(conn, vid) == []
        assert conn.execute("SELECT to_regclass('blog_embedding_store') IS NULL").fetchone()[0]
        conn.execute("INSERT INTO blog VALUES (9, 't', 'still writable')")


def test_dropping_the_source_table_leaves_no_broken_vectorizer(db):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        vid = conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'),
                              embedding => ai.embedding_ollama('all-minilm', 384))""").fetchone()[0]
        conn.execute("DROP TABLE blog CASCADE")
        assert _leftovers(conn, vid) == []
        assert conn.execute("SELECT to_regclass('blog_embedding_store') IS NULL").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_status").fetchone()[0] == 0


def test_a_table_owner_who_is_not_a_superuser_declares_its_vectorizer(app_role):
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("CREATE TABLE mine (id int PRIMARY KEY, body text); INSERT INTO mine VALUES (1, 'my row')")
        conn.execute("""SELECT ai.create_vectorizer('mine'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none())""")
    execute_vectorizer(app_role, "mine_embedding")
    with psycopg.connect(app_role) as conn:
        assert conn.execute("SELECT id, chunk FROM mine_embedding").fetchall() == [(1, "my row")]


def test_a_table_whose_name_has_a_quote_gets_a_vectorizer_that_runs(db, app_role):
    with psycopg.connect(app_role, autocommit=True) as conn:
        conn.execute("""CREATE TABLE "it's" (id int PRIMARY KEY, body text)""")
        conn.execute("""INSERT INTO "it's" VALUES (1, 'A quote in a table name is legal SQL.')""")
        conn.execute("""SELECT ai.create_vectorizer('"it''s"'::regclass, loading => ai.loading_column('body'),
                        embedding => ai.embedding_ollama('all-minilm', 384))""")
    execute_vectorizer(app_role, "it's_embedding")
    with psycopg.connect(app_role) as conn:
        assert conn.execute("""SELECT chunk FROM "it's_embedding" """).fetchall() == [
            ("A quote in a table name is legal SQL.",)]
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0] == 0


def test_a_doubled_dollar_in_a_template_is_a_literal_dollar_in_sql_and_python(db):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        # $$title is a literal "$title", not the column: no column named "title" is required by
        # it, and the engine renders it as "$title" (string.Template's escape).
        conn.execute("""SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'),
                        embedding => ai.embedding_ollama('all-minilm', 384),
                        formatting => ai.formatting_python_template('costs $$5: $$title $chunk'))""")
        columns = conn.execute("SELECT config->'formatting'->'columns' FROM ai.vectorizer").fetchone()[0]
    assert columns == []
    execute_vectorizer(db, "blog_embedding")
    with psycopg.connect(db) as conn:
        embedded = conn.execute("SELECT embedding FROM blog_embedding_store WHERE id = 1").fetchone()[0]
        expected = conn.execute("SELECT ai.ollama_embed('all-minilm', 'costs $5: $title ' || contents) FROM blog WHERE id = 1"
                                ).fetchone()[0]
        unescaped = conn.execute("SELECT ai.ollama_embed('all-minilm', 'costs $$5: $$title ' || contents) "
                                 "FROM blog WHERE id = 1").fetchone()[0]

    def cos(x, y) -> float:
        x, y = vec(x), vec(y)
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
    # A batch and a single request differ in the last bits: closest to "$5: $title", not "$$".
    assert cos(embedded, expected) > 0.9999 and cos(embedded, expected) > cos(embedded, unescaped)


@pytest.mark.parametrize("arg, error", [
    ("embedding => '{\"implementation\": \"cohere\", \"model\": \"m\", \"dimensions\": 3}'::jsonb",
     "unknown embedding implementation"),
    ("embedding => ai.embedding_ollama('all-minilm', 384), indexing => ai.indexing_hnsw(opclass => 'vector_foo_ops')",
     "unknown HNSW opclass"),
    ("embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_recursive_character_text_splitter(1, 0)",
     "chunk_size"),
    ("embedding => ai.embedding_ollama('all-minilm', 384), processing => ai.processing_default(concurrency => 0)",
     "concurrency between 1 and 64"),
])
def test_configuration_is_checked_when_declared_not_in_a_background_batch(db, arg, error):
    _setup(db)
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=error) as info:
            conn.execute(f"SELECT ai.create_vectorizer('blog'::regclass, loading => ai.loading_column('contents'), {arg})")
        assert info.value.diag.message_hint
        assert conn.execute("SELECT count(*) FROM ai.vectorizer").fetchone()[0] == 0
