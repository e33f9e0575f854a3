"""Search as a careless or hostile user tries it: each case failed before it was fixed.

A failed search does not break the next one; a huge k is not an overflow; a search never
creates indexes (the store's owner decides); nobody but pgweave's own code writes the query
cache, a role reads only its own entries, and no session grows it; a filter nested too deeply
gets a clear error.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from pgweave_testing.helpers import role_dsn, served_inputs
from test_search import _articles

READER = "hardening_reader"


@pytest.fixture
def reader(db):
    """A non-superuser role that may search articles (granted at creation of the vectorizer)."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {READER}; CREATE ROLE {READER} LOGIN")
        conn.execute("SELECT ai.grant_ai_usage(%s)", (READER,))
    _articles(db, f", grant_to => ARRAY['{READER}']")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT ON articles, authors TO {READER}")
    yield role_dsn(db, READER)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {READER}; DROP ROLE {READER}")


def test_a_failed_search_in_a_fresh_session_does_not_break_the_next_one(reader):
    with psycopg.connect(reader, autocommit=True) as conn:  # pgvector not yet loaded in this backend
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("""SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'cats',
                            where_clause => 'no_such_column = 1')""")
        for search in ("semantic_search", "hybrid_search"):
            rows = conn.execute(f"SELECT (hit).id FROM ai.{search}(NULL::articles_embedding, "
                                "'Which pet purrs when it is happy?', k => 1)").fetchall()
            assert rows == [(1,)]
        # The caller's own choice is kept and put back.
        conn.execute("BEGIN; SET LOCAL hnsw.iterative_scan = strict_order")
        for search in ("semantic_search", "hybrid_search"):
            conn.execute(f"SELECT * FROM ai.{search}(NULL::articles_embedding, 'dogs', k => 1)")
            assert conn.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "strict_order"
            assert conn.execute("SHOW enable_mergejoin").fetchone()[0] == "on"  # set for the statement only
        conn.execute("COMMIT")


def test_a_k_larger_than_any_table_returns_every_row(reader):
    with psycopg.connect(reader) as conn:
        for search in ("semantic_search", "hybrid_search", "text_search"):
            rows = conn.execute(f"SELECT (hit).id FROM ai.{search}(NULL::articles_embedding, 'pets and bread', "
                                "k => 1000000000)").fetchall()
            assert len(rows) >= 1 and len(rows) == len(set(rows)), search
        assert len(conn.execute("SELECT 1 FROM ai.semantic_search(NULL::articles_embedding, 'x', "
                                "k => 2147483647)").fetchall()) == 11


def test_searches_in_new_languages_create_no_index_the_owner_decides(db, reader):
    count = """SELECT count(*) FROM pg_indexes WHERE tablename = 'articles_embedding_store'"""
    with psycopg.connect(db) as conn:
        before = conn.execute(count).fetchone()[0]
    with psycopg.connect(reader) as conn:
        for language in ("english", "simple", "german", "french", "dutch"):
            conn.execute("SELECT * FROM ai.hybrid_search(NULL::articles_embedding, 'bread', k => 1, language => %s)",
                         (language,))
            conn.execute("SELECT * FROM ai.text_search(NULL::articles_embedding, 'bread', k => 1, language => %s)",
                         (language,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("SELECT ai.create_text_index('articles_embedding', 'german')")
        assert "owner" in info.value.diag.message_primary and "create_text_index" in info.value.diag.message_hint
    with psycopg.connect(db) as conn:
        assert conn.execute(count).fetchone()[0] == before
        conn.execute("SELECT ai.create_text_index('articles_embedding', 'german')")
        assert conn.execute(count).fetchone()[0] == before + 1


def test_no_role_writes_the_cache_nor_grows_it_nor_reads_another_roles_entries(db, reader, model_server_url):
    key = ("SELECT ai._query_cache_key(config -> 'embedding', %s) FROM ai.vectorizer "
           "WHERE name = 'articles_embedding'")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET ai.query_cache_size = 2")
    with psycopg.connect(reader, autocommit=True) as conn:
        conn.execute("SET ai.query_cache_size = 100000000")  # a session cannot raise the bound
        for q in ("one", "two", "three", "four"):
            conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s, k => 1)", (q,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ai._query_cache_put('k', array_fill(1::real, ARRAY[16000]))")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="internal"):
            conn.execute("SELECT ai._query_cache_write('k')")
    with psycopg.connect(db, autocommit=True) as conn:  # the owner asks a query of its own
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'owners only', k => 1)")
        assert conn.execute(f"SELECT ai._query_cache_read(({key}))", ("owners only",)).fetchone()[0] is not None
    with psycopg.connect(reader, autocommit=True) as conn:
        # Reading is open to any role, and answers with the caller's own entries only.
        assert len(conn.execute(f"SELECT ai._query_cache_read(({key}))", ("four",)).fetchone()[0]) == 384
        assert conn.execute(f"SELECT ai._query_cache_read(({key}))", ("owners only",)).fetchone()[0] is None
        # The search code still uses the cache: a repeated query costs no model call.
        before = served_inputs(model_server_url)
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'four', k => 1)")
        assert served_inputs(model_server_url) == before
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] == 2


def test_a_deeply_nested_filter_gets_a_clear_error(reader):
    deep = '{"category": [' + "[" * 5000 + "]" * 5000 + "]}"
    with psycopg.connect(reader) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
            conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'x', filter => %s)", (deep,))
        assert "RecursionError" not in str(info.value) and "filter" in info.value.diag.message_primary
        assert info.value.diag.message_hint


def _prepared(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgweave\\_search\\_%'").fetchall()]


def test_a_search_statement_prepared_in_a_session_never_runs_with_rights_the_login_role_lacks(db, reader):
    """semantic_search prepares its scan of a cached query once per session. A role that puts
    its own statement under that name (here one that notes who runs it) gets it back only in its
    own searches: a SECURITY DEFINER function of a superuser that searches in the role's
    session plans its scan instead, and returns the real rows."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"""CREATE TABLE who_ran (role name);
            GRANT INSERT ON who_ran TO {READER};
            CREATE FUNCTION note_caller() RETURNS int LANGUAGE sql AS
                'INSERT INTO who_ran VALUES (current_user) RETURNING 1';
            CREATE FUNCTION owner_search(q text) RETURNS SETOF int LANGUAGE sql SECURITY DEFINER
                SET search_path = pg_catalog AS
                $$SELECT (s.hit).id FROM ai.semantic_search(NULL::public.articles_embedding, q, k => 2) s
                  ORDER BY s.rank$$;
            GRANT EXECUTE ON FUNCTION owner_search(text) TO {READER}""")
    question = "Which pet purrs when it is happy?"
    with psycopg.connect(reader, autocommit=True) as conn:
        honest = [r[0] for r in conn.execute(
            "SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => 2) ORDER BY rank",
            (question,)).fetchall()]
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s, k => 2)", (question,))
        [name] = _prepared(conn)  # the second search, of a cached query, prepared its scan
        conn.execute(f'DEALLOCATE "{name}"')
        conn.execute(f"""PREPARE "{name}"(text) AS
            SELECT public.note_caller(), 0::float8, v FROM public.articles_embedding v""")
        assert [r[0] for r in conn.execute("SELECT * FROM owner_search(%s)", (question,)).fetchall()] == honest
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM who_ran").fetchone()[0] == 0


def test_a_prepared_search_comes_back_after_deallocate_and_stops_at_64_per_session(reader):
    question = "bread and pets"
    with psycopg.connect(reader, autocommit=True) as conn:
        search = "SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => %s) ORDER BY rank"
        first = conn.execute(search, (question, 3)).fetchall()
        assert conn.execute(search, (question, 3)).fetchall() == first and len(_prepared(conn)) == 1
        conn.execute("DEALLOCATE ALL")
        assert conn.execute(search, (question, 3)).fetchall() == first and len(_prepared(conn)) == 1
        conn.execute("SET hnsw.ef_search = 200")  # a first scan without iterative scans for every k below
        for k in range(1, 71):
            rows = conn.execute(search, (question, k)).fetchall()
            assert len(rows) == min(k, 11) and rows[:3] == first[:min(k, 3)], k
        assert len(_prepared(conn)) == 64


def test_a_prepared_search_returns_nothing_for_a_vector_gone_from_the_cache(reader):
    """The prepared scan reads the query's vector from the cache again: should the entry be gone
    by then, it returns no row (and search scans with the vector it read first), never k rows at
    a NULL distance, which is what pgvector's index scan gives for a NULL vector."""
    with psycopg.connect(reader, autocommit=True) as conn:
        for _ in range(2):
            conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'cats', k => 3)")
        [name] = _prepared(conn)
        key = conn.execute("""SELECT ai._query_cache_key(config -> 'embedding', 'cats') FROM ai.vectorizer
                              WHERE name = 'articles_embedding'""").fetchone()[0]
        run = sql.SQL("EXECUTE {}({})")
        assert conn.execute(run.format(sql.Identifier(name), "no such key")).fetchall() == []
        assert len(conn.execute(run.format(sql.Identifier(name), key)).fetchall()) == 3


def test_a_role_without_select_on_the_view_is_refused_on_the_prepared_path_too(db, reader):
    """A role that may use pgweave but not read the articles: its cached query does not get it
    past the view's privileges, the first time or once the scan is prepared."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS outsider; CREATE ROLE outsider LOGIN")
        conn.execute("SELECT ai.grant_ai_usage('outsider')")
    try:
        with psycopg.connect(role_dsn(db, "outsider"), autocommit=True) as conn:
            conn.execute("SELECT ai.vectorizer_embed('articles_embedding', 'cats')")  # now cached for it
            for _ in range(3):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'cats', k => 3)")
            assert len(_prepared(conn)) == 1  # the later searches ran the prepared scan, and were refused
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY outsider; DROP ROLE outsider")
