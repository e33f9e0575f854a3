"""Search in one SQL call: semantic, hybrid and RAG, on real embeddings of real text.

Each story: the right document ranks first for a clear question; filters still give k rows;
a repeated query costs no model call; and a role never sees, through any search function,
a row it may not read.
"""

from __future__ import annotations

import hashlib
import inspect
import json

import psycopg
import pytest

from pgweave_testing.fault_proxy import FaultProxy
from pgweave_testing.helpers import APP_OWNER, execute_vectorizer, role_dsn, served_inputs, vec

ARTICLES = [
    (1, "Cats", "pets", "Cats are small domesticated carnivores. They purr when they are content, "
                        "groom themselves with their rough tongues and sleep for most of the day."),
    (2, "Dogs", "pets", "Dogs are loyal companions descended from wolves. They need daily walks, "
                        "enjoy playing fetch and can be trained to herd sheep or guide blind people."),
    (3, "Rust", "tech", "Rust is a systems programming language that guarantees memory safety without "
                        "a garbage collector, using ownership and borrowing checked at compile time."),
    (4, "Vacuum", "tech", "In PostgreSQL, VACUUM reclaims the storage occupied by dead tuples left behind "
                          "by updates and deletes, and keeps the visibility map current for index-only scans."),
    (5, "Taxes", "money", "Quarterly estimated tax payments are due in April, June, September and January "
                          "for self-employed people who have no tax withheld from their income."),
    (6, "Sourdough", "food", "Sourdough bread rises with a starter of wild yeast and lactic acid bacteria "
                             "instead of commercial yeast, which gives the loaf its sour taste and chewy crumb."),
    (7, "Photosynthesis", "science", "Photosynthesis lets plants turn sunlight, water and carbon dioxide into "
                                     "glucose and oxygen inside the chloroplasts of their leaves."),
    (8, "Marathon", "sport", "Training for a marathon means building weekly mileage slowly, running one long "
                             "run each week and tapering for two or three weeks before race day."),
    (9, "Volcanoes", "science", "Volcanoes erupt when molten rock called magma rises through the crust; "
                                "lava flows, ash clouds and pyroclastic flows follow."),
    (10, "Mortgages", "money", "A fixed-rate mortgage keeps the same interest rate for the whole loan term, "
                               "so the monthly payment for a house does not change."),
    (11, "Router error", "tech", "The status light blinks amber and the log shows XJ-9042 when the firmware "
                                 "image fails its checksum; download the image again and reflash it."),
]

QUESTIONS = [
    ("Which pet purrs when it is happy?", 1),
    ("How do I take my dog for exercise?", 2),
    ("Which programming language is memory safe without garbage collection?", 3),
    ("How does Postgres clean up dead rows?", 4),
    ("When do freelancers have to pay estimated taxes?", 5),
    ("How is bread made with wild yeast?", 6),
    ("How do plants make sugar from light?", 7),
    ("How should I prepare for running 42 kilometres?", 8),
    ("What happens when magma reaches the surface?", 9),
    ("Does my house loan payment stay the same every month?", 10),
]

SCHEMA = """
CREATE TABLE articles (id int PRIMARY KEY, title text NOT NULL, category text NOT NULL,
                       body text NOT NULL, owner name NOT NULL DEFAULT 'search_reader');
CREATE TABLE authors (article_id int PRIMARY KEY REFERENCES articles, author text NOT NULL);
"""


def _articles(dsn: str, vectorizer_args: str = "") -> None:
    """The articles table with a vectorizer on it, drained."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO articles (id, title, category, body) VALUES (%s, %s, %s, %s)",
                            ARTICLES)
            cur.executemany("INSERT INTO authors VALUES (%s, %s)",
                            [(a[0], "Ada" if a[0] % 2 else "Grace") for a in ARTICLES])
        conn.execute(f"""SELECT ai.create_vectorizer('articles'::regclass,
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            formatting => ai.formatting_python_template('$title: $chunk'),
            scheduling => ai.scheduling_none() {vectorizer_args})""")
    execute_vectorizer(dsn, "articles_embedding")


def _ids(conn, sql: str, params=None) -> list[int]:
    return [r[0] for r in conn.execute(sql, params).fetchall()]


# --- semantic search -----------------------------------------------------------------------

def test_the_right_article_ranks_first_for_clear_questions(db):
    _articles(db)
    with psycopg.connect(db) as conn:
        for question, expected in QUESTIONS:
            rows = conn.execute("""SELECT s.rank, s.distance, (s.hit).id, (s.hit).title, (s.hit).chunk
                                   FROM ai.semantic_search(NULL::articles_embedding, %s, k => 3) s""",
                                (question,)).fetchall()
            assert [r[0] for r in rows] == [1, 2, 3]
            assert rows[0][2] == expected, (question, rows)
            assert [r[1] for r in rows] == sorted(r[1] for r in rows)
            assert rows[0][4] == ARTICLES[expected - 1][3]


def test_results_have_the_view_columns_with_their_types(db):
    _articles(db)
    with psycopg.connect(db) as conn:
        cur = conn.execute("""SELECT s.rank, s.distance, (s.hit).*
                              FROM ai.semantic_search(NULL::articles_embedding, 'cats', k => 1) s""")
        names = [d.name for d in cur.description]
        row = cur.fetchone()
        assert names == ["rank", "distance", "embedding_uuid", "chunk_seq", "chunk", "embedding",
                         "id", "title", "category", "body", "owner"]
        assert isinstance(row[6], int) and row[7] == "Cats"
        # The distance is the one of the hand-written pgvector query, on the same vector.
        same = conn.execute("""SELECT embedding <=> ai.vectorizer_embed('articles_embedding', 'cats')
                               FROM articles_embedding WHERE id = 1""").fetchone()[0]
        assert row[1] == pytest.approx(same, abs=1e-6)
        assert vec(row[5]).shape == (384,)


def test_results_join_order_and_paginate_as_plain_sql(db):
    _articles(db)
    question = "Which pet purrs when it is happy?"
    with psycopg.connect(db) as conn:
        everything = _ids(conn, """SELECT (s.hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => 11) s
                                   ORDER BY s.rank""", (question,))
        assert sorted(everything) == list(range(1, 12))
        page_two = _ids(conn, """SELECT (s.hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => 6) s
                                 ORDER BY s.rank OFFSET 3 LIMIT 3""", (question,))
        assert page_two == everything[3:6]
        joined = conn.execute("""
            SELECT a.author, (s.hit).title FROM ai.semantic_search(NULL::articles_embedding, %s, k => 4) s
            JOIN authors a ON a.article_id = (s.hit).id
            WHERE (s.hit).category = 'pets' ORDER BY (s.hit).title""", (question,)).fetchall()
        assert joined == [("Ada", "Cats"), ("Grace", "Dogs")]


def test_filters_on_source_columns_apply_before_the_limit(db):
    _articles(db)
    with psycopg.connect(db) as conn:
        money = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding,
                              'Which pet purrs when it is happy?', k => 5, filter => '{"category": "money"}')""")
        assert sorted(money) == [5, 10]
        listed = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, 'animals',
                               k => 3, filter => '{"category": ["pets", "food"]}') ORDER BY rank""")
        assert sorted(listed) == [1, 2, 6]
        where = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, 'animals',
                              k => 20, where_clause => 'id > 8 AND title <> ''Mortgages''')""")
        assert sorted(where) == [9, 11]
        # filter values are literals, never SQL.
        none = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, 'animals',
                             filter => %s::jsonb)""", (json.dumps({"title": "x' OR true --"}),))
        assert none == []


def _builtin_docs() -> list[str]:
    """Real English text without a download: the docstrings of Python's built-in types."""
    out = []
    for kind in (str, list, dict, set, bytes, int, float, tuple):
        for name in sorted(dir(kind)):
            doc = " ".join((inspect.getdoc(getattr(kind, name)) or "").split())
            if len(doc) > 40 and doc not in out:
                out.append(doc)
    return out


def test_a_selective_filter_still_returns_k_rows_from_the_hnsw_index(db):
    docs = _builtin_docs()[:120]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE pydocs (id int PRIMARY KEY, shard int NOT NULL, body text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO pydocs VALUES (%s, %s, %s)", [(i, i % 20, d) for i, d in enumerate(docs)])
        conn.execute("""SELECT ai.create_vectorizer('pydocs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_none(),
            indexing => ai.indexing_hnsw(min_rows => 1), scheduling => ai.scheduling_none())""")
    execute_vectorizer(db, "pydocs_embedding")
    query = "Return a copy of the string converted to uppercase."
    with psycopg.connect(db) as conn:
        assert conn.execute("""SELECT count(*) FROM pg_indexes WHERE tablename = 'pydocs_embedding_store'
                               AND indexdef LIKE '%%hnsw%%'""").fetchone()[0] == 1
        exact = _ids(conn, """SELECT id FROM pydocs_embedding WHERE shard = 7
                              ORDER BY embedding <=> ai.vectorizer_embed('pydocs_embedding', %s), id LIMIT 5""", (query,))
        assert len(exact) == 5
        # Make the planner walk the HNSW index (a small table would be sorted exactly), with a
        # short candidate list: the hand-written query then loses rows to the filter.
        conn.execute("SET enable_seqscan = off; SET enable_sort = off; SET hnsw.ef_search = 10")
        conn.execute("SET hnsw.iterative_scan = off")
        plain = _ids(conn, """SELECT id FROM pydocs_embedding WHERE shard = 7
                              ORDER BY embedding <=> ai.vectorizer_embed('pydocs_embedding', %s) LIMIT 5""", (query,))
        assert len(plain) < 5
        found = conn.execute("""SELECT (hit).id, (hit).shard, distance FROM ai.semantic_search(
                                NULL::pydocs_embedding, %s, k => 5, filter => '{"shard": 7}') ORDER BY rank""",
                             (query,)).fetchall()
        assert len(found) == 5 and {r[1] for r in found} == {7}
        assert [r[2] for r in found] == sorted(r[2] for r in found)
        assert len({r[0] for r in found} & set(exact)) >= 4  # relaxed order: approximate, like the index
        # The caller's setting is left as it was.
        assert conn.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "off"


def test_k_rows_come_back_when_row_level_security_drops_most_index_candidates(background_db):
    """Search lets pgvector's index scan go on (iterative scans) until k rows pass: as a table
    owner who is not a superuser, in a database that is not pg_cron's, unfiltered, the owner
    gets what the hand-written index scan gets; a reader whose row-level security hides five
    rows in six, with a short candidate list, still gets k rows, all of them visible to it
    (the hand-written query gets fewer)."""
    owner, reader = role_dsn(background_db, APP_OWNER), "hnsw_reader"
    with psycopg.connect(background_db, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {reader}; CREATE ROLE {reader} LOGIN")
        conn.execute("SELECT ai.grant_ai_usage(%s)", (reader,))
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.rls_docs (id int PRIMARY KEY, body text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO app.rls_docs VALUES (%s, %s)", list(enumerate(_builtin_docs()[:60])))
        conn.execute(f"""SELECT ai.create_vectorizer('app.rls_docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_none(),
            indexing => ai.indexing_hnsw(min_rows => 1), scheduling => ai.scheduling_none(),
            grant_to => ARRAY['{reader}'])""")
        conn.execute("CALL ai.execute_vectorizer('rls_docs_embedding')")
        conn.execute(f"GRANT USAGE ON SCHEMA app TO {reader}; GRANT SELECT ON app.rls_docs TO {reader}")
        conn.execute("ALTER TABLE app.rls_docs ENABLE ROW LEVEL SECURITY")
        conn.execute(f"CREATE POLICY sixth ON app.rls_docs FOR SELECT TO {reader} USING (id % 6 = 0)")
    query = "Return a copy of the string converted to uppercase."
    index_scan = "SET enable_seqscan = off; SET enable_sort = off; SET hnsw.ef_search = 10"
    try:
        with psycopg.connect(owner) as conn:
            conn.execute(index_scan)
            hand = _ids(conn, """SELECT id FROM app.rls_docs_embedding ORDER BY embedding <=>
                                 ai.vectorizer_embed('rls_docs_embedding', %s) LIMIT 4""", (query,))
            found = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::app.rls_docs_embedding, %s, k => 4)
                                  ORDER BY rank""", (query,))
            assert len(hand) == 4 and found == hand
        with psycopg.connect(role_dsn(background_db, reader)) as conn:
            conn.execute(index_scan)
            plain = _ids(conn, """SELECT id FROM app.rls_docs_embedding ORDER BY embedding <=>
                                  ai.vectorizer_embed('rls_docs_embedding', %s) LIMIT 4""", (query,))
            assert len(plain) < 4  # the index's ten candidates hold fewer than four visible rows
            found = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::app.rls_docs_embedding, %s, k => 4)
                                  ORDER BY rank""", (query,))
            assert len(found) == 4 and all(i % 6 == 0 for i in found)
            assert conn.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "off"
    finally:
        with psycopg.connect(background_db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {reader}; DROP ROLE {reader}")


def test_k_rows_come_back_when_deleted_rows_drop_most_index_candidates(background_db):
    """An unfiltered search first scans the index without iterative scans (they cost about
    0.1 ms a search), and for the rest with them when that found fewer than k rows: here five source
    rows in six were deleted and the engine has not yet removed their chunks, so the view
    drops most of the index's candidates. As a table owner who is not a superuser, in a
    database that is not pg_cron's."""
    owner = role_dsn(background_db, APP_OWNER)
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.gone_docs (id int PRIMARY KEY, body text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO app.gone_docs VALUES (%s, %s)", list(enumerate(_builtin_docs()[:60])))
        conn.execute("""SELECT ai.create_vectorizer('app.gone_docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_none(),
            indexing => ai.indexing_hnsw(min_rows => 1), scheduling => ai.scheduling_none())""")
        conn.execute("CALL ai.execute_vectorizer('gone_docs_embedding')")
    query = "Return a copy of the string converted to uppercase."
    with psycopg.connect(owner) as conn:
        conn.execute("SET enable_seqscan = off; SET enable_sort = off; SET hnsw.ef_search = 10")
        first = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::app.gone_docs_embedding, %s, k => 4)
                              ORDER BY rank""", (query,))
        assert len(first) == 4
        conn.execute("DELETE FROM app.gone_docs WHERE id % 6 <> 0")  # queued; the store keeps the chunks
        assert conn.execute("SELECT count(*) FROM app.gone_docs_embedding_store").fetchone()[0] == 60
        plain = _ids(conn, """SELECT id FROM app.gone_docs_embedding ORDER BY embedding <=>
                              ai.vectorizer_embed('gone_docs_embedding', %s) LIMIT 4""", (query,))
        # The index's ten candidates hold fewer than four rows still there, but some: search returns
        # those, then the rest from an iterative scan that skips them.
        assert 0 < len(plain) < 4
        found = conn.execute("""SELECT (hit).id, distance, rank FROM ai.semantic_search(
                                NULL::app.gone_docs_embedding, %s, k => 4) ORDER BY rank""", (query,)).fetchall()
        assert len({r[0] for r in found}) == 4 and all(r[0] % 6 == 0 for r in found)
        assert [r[1] for r in found] == sorted(r[1] for r in found) and [r[2] for r in found] == [1, 2, 3, 4]
        assert set(plain) <= {r[0] for r in found}
        assert conn.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "off"
        # The query is cached, so that was the prepared scan (all k or none, then iterative scans);
        # with the cache off the scan is planned, returns what it found, and the rest follow.
        conn.execute("SET ai.query_cache_size = 0")
        again = conn.execute("""SELECT (hit).id, distance, rank FROM ai.semantic_search(
                                NULL::app.gone_docs_embedding, %s, k => 4) ORDER BY rank""", (query,)).fetchall()
        assert [r[0] for r in again] == [r[0] for r in found] and [r[2] for r in again] == [1, 2, 3, 4]


def test_odd_names_and_columns_named_like_the_search_query(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""CREATE SCHEMA "Odd Schema";
            CREATE TABLE "Odd Schema"."My Docs" ("Key Col" int PRIMARY KEY, v text, rank int, "Body Text" text);
            INSERT INTO "Odd Schema"."My Docs" VALUES (1, 'x', 10, 'Cats purr when they are content.'),
                                                      (2, 'y', 20, 'Rust guarantees memory safety.')""")
        conn.execute("""SELECT ai.create_vectorizer('"Odd Schema"."My Docs"'::regclass, name => 'odd one',
            loading => ai.loading_column('Body Text'), embedding => ai.embedding_ollama('all-minilm', 384),
            scheduling => ai.scheduling_none())""")
    execute_vectorizer(db, "odd one")
    with psycopg.connect(db) as conn:
        rows = conn.execute("""SELECT s.rank, (s.hit).rank, (s.hit).v, (s.hit)."Key Col"
                               FROM ai.semantic_search(NULL::"Odd Schema"."My Docs_embedding", 'purring',
                                                       filter => '{"Key Col": [1, 2], "v": "x"}') s""").fetchall()
        assert rows == [(1, 10, "x", 1)]
        rows = conn.execute("""SELECT (s.hit).v FROM ai.hybrid_search(NULL::"Odd Schema"."My Docs_embedding",
                               'memory safety', k => 1, where_clause => '"Key Col" = 2') s""").fetchall()
        assert rows == [("y",)]


def test_wrong_arguments_say_what_to_write(db):
    """Errors name the problem and the fix, in the words of the message alone (no Python class)."""
    _articles(db)
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.errors.WrongObjectType) as info:
            conn.execute("SELECT * FROM ai.semantic_search('articles_embedding'::text, 'q')")
        assert info.value.diag.message_primary == "text is not the view of a vectorizer"
        assert "NULL::public.articles_embedding" in info.value.diag.message_hint
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn) as info:
            conn.execute("""SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'q', filter => '{"colour": 1}')""")
        assert info.value.diag.message_primary == \
            'filter names column "colour", which public.articles_embedding does not have'
        assert "category" in info.value.diag.message_hint
    for sql, error, message in (
            ("""SELECT * FROM ai.hybrid_search(NULL::articles_embedding, 'q', filter => '[1]')""",
             psycopg.errors.InvalidParameterValue, "filter must be a JSON object, got list"),
            ("""SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'q', filter => '{"embedding": 1}')""",
             psycopg.errors.InvalidParameterValue, 'filter compares scalar columns with values; cannot compare '
                                                   'column "embedding" ('),
            ("SELECT ai.vectorizer_embed(42, 'q')", psycopg.errors.UndefinedObject, "vectorizer 42 does not exist"),
            ("SELECT ai.vectorizer_embed('nope', 'q')", psycopg.errors.UndefinedObject,
             'vectorizer "nope" does not exist')):
        with psycopg.connect(db) as conn:
            with pytest.raises(error) as info:
                conn.execute(sql)
            assert info.value.diag.message_primary.startswith(message)  # the whole message, or its start
            assert info.value.diag.message_hint
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="k must be"):
            conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'q', k => 0)")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM ai.semantic_search(NULL::articles_embedding, NULL)").fetchone()[0] == 0


# --- hybrid search -------------------------------------------------------------------------

def test_hybrid_search_fuses_keyword_and_meaning(db):
    _articles(db)
    query = "what is a checksum"  # only the router article has the word; Vacuum is nearer in meaning
    with psycopg.connect(db, autocommit=True) as conn:
        vector_only = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => 3)
                                    ORDER BY rank""", (query,))
        assert vector_only[0] != 11 and 11 in vector_only
        rows = conn.execute("""SELECT rank, score, vector_rank, text_rank, distance, (hit).id
                               FROM ai.hybrid_search(NULL::articles_embedding, %s, k => 3)""", (query,)).fetchall()
        assert rows[0][5] == 11, (vector_only, rows)
        assert rows[0][3] == 1  # the keyword matched
        assert [r[0] for r in rows] == [1, 2, 3]
        assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
        # score = vector_weight / (rrf_k + vector_rank) + text_weight / (rrf_k + text_rank)
        for _, score, vr, tr, _, _ in rows:
            assert score == pytest.approx((1 / (60 + vr) if vr else 0) + (1 / (60 + tr) if tr else 0))
        # Searching created no index: the store's owner decides, and makes one once.
        gin = """SELECT indexdef FROM pg_indexes WHERE tablename = 'articles_embedding_store'
                 AND indexdef LIKE '%%gin%%'"""
        assert conn.execute(gin).fetchall() == []
        name = conn.execute("SELECT ai.create_text_index('articles_embedding')").fetchone()[0]
        assert conn.execute("SELECT ai.create_text_index('articles_embedding', 'english')").fetchone()[0] == name
        indexes = conn.execute(gin).fetchall()
        assert len(indexes) == 1 and "to_tsvector('english'::regconfig, chunk)" in indexes[0][0]
        # The same results through the index.
        again = conn.execute("""SELECT rank, score, vector_rank, text_rank, distance, (hit).id
                                FROM ai.hybrid_search(NULL::articles_embedding, %s, k => 3)""", (query,)).fetchall()
        assert again == rows


def test_hybrid_weights_and_fusion_constant_are_arguments(db):
    _articles(db)
    query = "How does Postgres clean up dead rows?"
    with psycopg.connect(db) as conn:
        semantic = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => 5)
                                 ORDER BY rank""", (query,))
        vector_only = _ids(conn, """SELECT (hit).id FROM ai.hybrid_search(NULL::articles_embedding, %s, k => 5,
                                    text_weight => 0) ORDER BY rank""", (query,))
        assert vector_only == semantic
        text_only = conn.execute("""SELECT text_rank, (hit).id FROM ai.hybrid_search(NULL::articles_embedding, %s,
                                    k => 5, vector_weight => 0) ORDER BY rank""", (query,)).fetchall()
        ranked = [r for r in text_only if r[0] is not None]
        assert ranked and [r[0] for r in ranked] == list(range(1, len(ranked) + 1))
        assert ranked[0][1] == 4
        top = conn.execute("""SELECT score, vector_rank, text_rank FROM ai.hybrid_search(NULL::articles_embedding, %s,
                              k => 1, vector_weight => 2, text_weight => 0.5, rrf_k => 10)""", (query,)).fetchone()
        score, vr, tr = top
        assert score == pytest.approx(2 / (10 + vr) + (0.5 / (10 + tr) if tr else 0))
        filtered = _ids(conn, """SELECT (hit).id FROM ai.hybrid_search(NULL::articles_embedding, %s, k => 5,
                                 filter => '{"category": "science"}')""", (query,))
        assert sorted(filtered) == [7, 9]


def test_full_text_search_ranks_by_bm25_and_calls_no_model(db, model_server_url):
    _articles(db)
    with psycopg.connect(db) as conn:
        before = served_inputs(model_server_url)
        rows = conn.execute("""SELECT rank, score, (hit).id FROM ai.text_search(NULL::articles_embedding,
                               'firmware checksum and the yeast of bread', k => 5)""").fetchall()
        assert served_inputs(model_server_url) == before
        assert {r[2] for r in rows} == {6, 11} and [r[0] for r in rows] == [1, 2]
        assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
        # Both articles hold two of the query's words, equally rare; "yeast" twice in the
        # sourdough article (term frequency) puts it first.
        assert rows[0][2] == 6
        assert _ids(conn, """SELECT (hit).id FROM ai.text_search(NULL::articles_embedding, 'bread',
                             filter => '{"category": "tech"}')""") == []
        assert _ids(conn, "SELECT (hit).id FROM ai.text_search(NULL::articles_embedding, 'the of and')") == []


# --- the query-embedding cache -------------------------------------------------------------

def test_a_repeated_query_makes_no_model_call(db, model_server_url):
    _articles(db)
    with psycopg.connect(db) as conn:
        before = served_inputs(model_server_url)
        first = _ids(conn, "SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, 'purring pets', k => 3)")
        assert served_inputs(model_server_url) - before == 1
        again = _ids(conn, "SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, 'purring pets', k => 3)")
        conn.execute("SELECT * FROM ai.hybrid_search(NULL::articles_embedding, 'purring pets', k => 3)")
        conn.execute("SELECT * FROM ai.rag_prompt(NULL::articles_embedding, 'purring pets', k => 3)")
        conn.execute("SELECT ai.vectorizer_embed('articles_embedding', 'purring pets')")
        assert served_inputs(model_server_url) - before == 1
        assert again == first
    with psycopg.connect(db) as conn:  # another session of the same role shares the cache
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'purring pets', k => 3)")
        assert served_inputs(model_server_url) - before == 1
        # The cached vector is exactly the model's.
        cached, fresh = conn.execute("""SELECT ai.vectorizer_embed('articles_embedding', 'purring pets')::text,
                                        ai.ollama_embed('all-minilm', 'purring pets')::text""").fetchone()
        assert cached == fresh


def test_another_model_host_or_size_never_gets_a_stale_vector(db, model_server_url):
    _articles(db)
    other_host = model_server_url.replace("127.0.0.1", "localhost")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("""SELECT ai.create_vectorizer('articles'::regclass, name => 'small',
            destination => 'articles_small', loading => ai.loading_column('body'),
            embedding => ai.embedding_openai('all-minilm', 128), scheduling => ai.scheduling_none())""")
        conn.execute(f"""SELECT ai.create_vectorizer('articles'::regclass, name => 'pinned',
            destination => 'articles_pinned', loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384, base_url => '{other_host}'),
            scheduling => ai.scheduling_none())""")
    execute_vectorizer(db, "small")
    execute_vectorizer(db, "pinned")
    with psycopg.connect(db) as conn:
        before = served_inputs(model_server_url)
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'volcano', k => 1)")
        assert served_inputs(model_server_url) - before == 1
        # Another size (and provider): its own model call, its own 128-dimension vector.
        assert conn.execute("SELECT vector_dims(ai.vectorizer_embed('small', 'volcano'))").fetchone()[0] == 128
        assert _ids(conn, "SELECT (hit).id FROM ai.semantic_search(NULL::articles_small, 'volcano', k => 1)") == [9]
        assert served_inputs(model_server_url) - before == 2
        # Another host: another call.
        assert _ids(conn, "SELECT (hit).id FROM ai.semantic_search(NULL::articles_pinned, 'volcano', k => 1)") == [9]
        assert served_inputs(model_server_url) - before == 3
        # The host a setting names is part of the key too: an unreachable one fails, it is not
        # answered from the cache of the reachable one.
        conn.execute("SET ai.ollama_host = 'http://127.0.0.1:9'; SET ai.http_retries = 0")
        with pytest.raises(psycopg.Error, match="127.0.0.1:9"):
            conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, 'volcano', k => 1)")


def test_the_cache_is_bounded_and_keeps_recently_used_entries(db, model_server_url):
    _articles(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET ai.query_cache_size = 3")
    with psycopg.connect(db, autocommit=True) as conn:

        def search(q: str) -> None:
            conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s, k => 1)", (q,))

        for q in ("one", "two", "three"):
            search(q)
        assert conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] == 3
        # Age every entry, then use "one": it becomes the most recently used.
        conn.execute("UPDATE ai._query_embedding_cache SET last_used = now() - interval '1 hour'")
        conn.execute("""UPDATE ai._query_embedding_cache SET last_used = last_used - interval '1 hour'
                        WHERE key = %s""", (_key_of(conn, "two", model_server_url),))
        search("one")
        search("four")
        assert conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] == 3
        keys = {r[0] for r in conn.execute("SELECT key FROM ai._query_embedding_cache")}
        cached = {q for q in ("one", "two", "three", "four") if _key_of(conn, q, model_server_url) in keys}
        assert cached == {"one", "three", "four"}
        conn.execute("SET ai.query_cache_size = 0")
        conn.execute("DELETE FROM ai._query_embedding_cache")
        search("five")
        assert conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] == 0
        conn.execute("SET ai.query_cache_size = 'lots'")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="ai.query_cache_size"):
            search("six")


def _key_of(conn, query: str, host: str) -> str:
    """The cache table's key of a query for articles_embedding: sha256 of the session user, a
    newline and the query's key (ai._query_cache_key, which hashes provider, model, the host the
    request goes to, dimensions, options and text; checked here to follow the host)."""
    inner = conn.execute("SELECT ai._query_cache_key(config -> 'embedding', %s::text) FROM ai.vectorizer "
                         "WHERE name = 'articles_embedding'", (query,)).fetchone()[0]
    elsewhere = conn.execute("SELECT ai._query_cache_key(config -> 'embedding' || jsonb_build_object('base_url', %s::text), %s::text) "
                             "FROM ai.vectorizer WHERE name = 'articles_embedding'", (host + "0", query)).fetchone()[0]
    assert inner != elsewhere
    user = conn.execute("SELECT session_user").fetchone()[0]
    return hashlib.sha256(f"{user}\n{inner}".encode()).hexdigest()


def test_search_works_in_a_read_only_transaction(db, model_server_url):
    _articles(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("BEGIN READ ONLY")
        assert _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding,
                             'Which pet purrs when it is happy?', k => 1)""") == [1]
        assert _ids(conn, """SELECT (hit).id FROM ai.hybrid_search(NULL::articles_embedding,
                             'XJ-9042', k => 1)""") == [11]
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] == 0


# --- privileges ----------------------------------------------------------------------------

@pytest.fixture
def roles(db):
    """search_reader: may read articles, but row-level security hides the money articles from it;
    search_outsider: may call ai functions, but may not read articles at all."""
    with psycopg.connect(db, autocommit=True) as conn:
        for role in ("search_reader", "search_outsider"):
            conn.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN")
            conn.execute("SELECT ai.grant_ai_usage(%s)", (role,))
    _articles(db, ", grant_to => ARRAY['search_reader']")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("GRANT SELECT ON articles, authors TO search_reader")
        conn.execute("UPDATE articles SET owner = 'someone_else' WHERE category = 'money'")
        conn.execute("ALTER TABLE articles ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY own_rows ON articles FOR SELECT USING (owner = current_user)")
    yield
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP OWNED BY search_reader, search_outsider")
        conn.execute("DROP ROLE search_reader; DROP ROLE search_outsider")


HIDDEN = {5, 10}
TAX_QUESTION = "When do freelancers have to pay estimated taxes?"


def test_row_level_security_hides_rows_from_every_search_function(db, roles):
    with psycopg.connect(role_dsn(db, "search_reader")) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
        rows = conn.execute("""SELECT rank, (hit).id, (hit).chunk FROM ai.semantic_search(NULL::articles_embedding,
                               %s, k => 20)""", (TAX_QUESTION,)).fetchall()
        assert {r[1] for r in rows} == set(range(1, 12)) - HIDDEN
        assert [r[0] for r in rows] == list(range(1, 10))  # no gaps where hidden rows ranked
        filtered = _ids(conn, """SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, %s,
                                 filter => '{"category": "money"}')""", (TAX_QUESTION,))
        assert filtered == []
        hybrid = conn.execute("""SELECT rank, (hit).id FROM ai.hybrid_search(NULL::articles_embedding,
                                 'quarterly estimated tax payments mortgage', k => 20)""").fetchall()
        assert hybrid, "hybrid search found nothing: the check below would pass vacuously"
        assert {r[1] for r in hybrid} & HIDDEN == set() and [r[0] for r in hybrid] == list(range(1, len(hybrid) + 1))
        prompt, sources = conn.execute("SELECT * FROM ai.rag_prompt(NULL::articles_embedding, %s, k => 3)",
                                       (TAX_QUESTION,)).fetchone()
        assert "Quarterly" not in prompt and "mortgage" not in prompt
        assert len(sources) == 3, "RAG found fewer sources than asked: the check below would pass vacuously"
        assert {s["key"]["id"] for s in sources} & HIDDEN == set()
        # The reader sees exactly what a plain SELECT on the view shows it, and the store, which
        # grant_to let it read, is no way around the source's row-level security.
        assert conn.execute("SELECT count(*) FROM articles_embedding").fetchone()[0] == 9
        assert set(_ids(conn, "SELECT id FROM articles_embedding_store")) == set(range(1, 12)) - HIDDEN
        assert conn.execute("SELECT count(*) FROM articles_embedding_store WHERE chunk LIKE '%%mortgage%%'"
                            ).fetchone()[0] == 0


def test_the_store_follows_the_sources_row_level_security(db, roles):
    """The roles fixture turned row-level security on after the vectorizer was made: the store
    shows each reader the chunks of the rows the source shows it. The engine still sees and writes
    every chunk; a role that may write the store sees all of it; and when the source's row-level
    security goes, readers see every chunk again (the store's own stays on, for column rights)."""
    def store_rls(conn) -> bool:
        return conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'articles_embedding_store'::regclass"
                            ).fetchone()[0]

    with psycopg.connect(db, autocommit=True) as conn:
        assert store_rls(conn) is True
        conn.execute("UPDATE articles SET body = 'Tax payments for the self-employed are due quarterly.' WHERE id = 5")
        conn.execute("""INSERT INTO articles (id, title, category, body, owner)
                        VALUES (12, 'Pensions', 'money', 'Pensions pay out after retirement.', 'someone_else')""")
        conn.execute("DELETE FROM authors WHERE article_id = 10; DELETE FROM articles WHERE id = 10")
    execute_vectorizer(db, "articles_embedding")
    with psycopg.connect(db, autocommit=True) as conn:  # the owner (here the engine's role) sees all
        rows = dict(conn.execute("SELECT id, chunk FROM articles_embedding_store").fetchall())
        assert set(rows) == set(range(1, 13)) - {10}
        assert rows[5] == "Tax payments for the self-employed are due quarterly."
        conn.execute("DROP ROLE IF EXISTS store_writer; CREATE ROLE store_writer LOGIN")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON articles_embedding_store TO store_writer")
        conn.execute("GRANT SELECT (id) ON articles TO store_writer")  # the policies refer to the key
    try:
        with psycopg.connect(role_dsn(db, "store_writer")) as conn:
            assert conn.execute("SELECT count(*) FROM articles_embedding_store").fetchone()[0] == 11
        with psycopg.connect(role_dsn(db, "search_reader")) as conn:
            assert set(_ids(conn, "SELECT id FROM articles_embedding_store")) == set(range(1, 12)) - {5, 10}
            assert _ids(conn, "SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, 'pensions', k => 20)"
                        " WHERE (hit).id IN (5, 12)") == []
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("ALTER TABLE articles DISABLE ROW LEVEL SECURITY")
            assert store_rls(conn) is True   # the store stays protected: the source's rights still decide
        with psycopg.connect(role_dsn(db, "search_reader")) as conn:
            assert conn.execute("SELECT count(*) FROM articles_embedding_store").fetchone()[0] == 11
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY store_writer; DROP ROLE store_writer")


def test_a_role_without_select_gets_no_content(db, roles):
    with psycopg.connect(role_dsn(db, "search_outsider")) as conn:
        for sql in ("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s)",
                    "SELECT * FROM ai.hybrid_search(NULL::articles_embedding, %s)",
                    "SELECT * FROM ai.rag_prompt(NULL::articles_embedding, %s)",
                    "SELECT * FROM ai.rag(NULL::articles_embedding, %s, 'tiny-lm')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
                conn.execute(sql, (TAX_QUESTION,))
            assert "Quarterly" not in str(info.value)
            conn.rollback()


def test_any_role_may_turn_the_query_cache_off_for_its_session(db, roles, model_server_url):
    question = "Which pet purrs when it is happy?"
    with psycopg.connect(role_dsn(db, "search_reader")) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
        conn.execute("SET ai.query_cache_size = 0")
        before = served_inputs(model_server_url)
        for _ in range(2):
            assert _ids(conn, "SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => 1)",
                        (question,)) == [1]
        assert served_inputs(model_server_url) - before == 2  # no cache: a model call each time
        conn.execute("RESET ai.query_cache_size")
        for _ in range(2):
            conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s, k => 1)", (question,))
        assert served_inputs(model_server_url) - before == 3


def test_no_role_reads_or_learns_another_roles_queries(db, roles, model_server_url):
    secret_query = "is anyone being laid off next quarter"
    with psycopg.connect(db) as conn:  # the owner searches first
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s, k => 1)", (secret_query,))
        assert conn.execute("SELECT count(*) FROM ai._query_embedding_cache").fetchone()[0] == 1
        columns = _ids(conn, """SELECT attname FROM pg_attribute WHERE attrelid = 'ai._query_embedding_cache'::regclass
                                AND attnum > 0 AND NOT attisdropped ORDER BY attnum""")
        assert columns == ["key", "embedding", "last_used"]  # the text itself is never stored
    with psycopg.connect(role_dsn(db, "search_reader")) as conn:
        # ai.grant_ai_usage gives no right on the cache table (and row-level security would show
        # it nothing).
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM ai._query_embedding_cache")
    with psycopg.connect(role_dsn(db, "search_reader")) as conn:
        before = served_inputs(model_server_url)
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s, k => 1)", (secret_query,))
        # Not a hit: its own model call, so it cannot even learn that the query was asked.
        assert served_inputs(model_server_url) - before == 1
        conn.execute("SELECT * FROM ai.semantic_search(NULL::articles_embedding, %s, k => 1)", (secret_query,))
        assert served_inputs(model_server_url) - before == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ai._query_embedding_cache")


# --- RAG -----------------------------------------------------------------------------------

def test_rag_prompt_holds_the_retrieved_sources_formatted_and_numbered(db):
    _articles(db)
    with psycopg.connect(db) as conn:
        prompt, sources = conn.execute("""SELECT * FROM ai.rag_prompt(NULL::articles_embedding,
                                          'How is bread made with wild yeast?', k => 3)""").fetchone()
    assert [s["n"] for s in sources] == [1, 2, 3]
    assert sources[0]["key"] == {"id": 6} and sources[0]["chunk_seq"] == 0
    assert [s["distance"] for s in sources] == sorted(s["distance"] for s in sources)
    for s in sources:
        title = ARTICLES[s["key"]["id"] - 1][1]
        assert f"[{s['n']}] {title}: {s['chunk']}" in prompt  # the vectorizer's template: $title: $chunk
    assert prompt.rstrip().endswith("Question: How is bread made with wild yeast?")


def test_rag_answers_with_ollama_and_openai_chat_and_lists_its_sources(db):
    _articles(db)
    with psycopg.connect(db) as conn:
        expected_prompt, expected_sources = conn.execute("""SELECT * FROM ai.rag_prompt(NULL::articles_embedding,
                                                            'Which pet purrs when it is happy?', k => 2)""").fetchone()
        answer, sources, prompt = conn.execute("""
            SELECT * FROM ai.rag(NULL::articles_embedding, 'Which pet purrs when it is happy?', 'tiny-lm', k => 2,
                                 options => '{"num_predict": 8, "temperature": 0}')""").fetchone()
        assert isinstance(answer, str) and answer.strip()
        assert sources == expected_sources and prompt == expected_prompt
        assert [s["key"]["id"] for s in sources][0] == 1
        answer, sources, _ = conn.execute("""
            SELECT * FROM ai.rag(NULL::articles_embedding, 'Which pet purrs when it is happy?', 'tiny-lm', k => 2,
                                 implementation => 'openai', options => '{"max_tokens": 8, "temperature": 0}')""").fetchone()
        assert isinstance(answer, str) and answer.strip() and len(sources) == 2


def test_rag_errors_name_the_problem(db):
    _articles(db)
    with psycopg.connect(db) as conn:
        conn.execute("SET ai.http_retries = 0")
        with pytest.raises(psycopg.Error, match="127.0.0.1:9"):
            conn.execute("""SELECT * FROM ai.rag(NULL::articles_embedding, 'Which pet purrs?', 'tiny-lm',
                            base_url => 'http://127.0.0.1:9')""")
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.Error, match="no-such-model") as info:
            conn.execute("SELECT * FROM ai.rag(NULL::articles_embedding, 'Which pet purrs?', 'no-such-model')")
        assert not info.value.diag.message_primary.startswith(("plpy", "spiexceptions"))
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
            conn.execute("""SELECT * FROM ai.rag(NULL::articles_embedding, 'Which pet purrs?', 'tiny-lm',
                            implementation => 'carrier-pigeon')""")
        assert info.value.diag.message_primary == "unknown chat implementation 'carrier-pigeon'"
        assert "'ollama' or 'openai'" in info.value.diag.message_hint


def test_hybrid_candidates_bound_what_each_branch_contributes(db):
    """candidates => 3: each branch brings only its best three chunks, so every result is among
    the meaning's top three or the keywords' top three, at a branch rank of at most three;
    fewer candidates than k is refused with the fix."""
    _articles(db)
    query = "what is a checksum"
    with psycopg.connect(db) as conn:
        meaning = _ids(conn, "SELECT (hit).id FROM ai.semantic_search(NULL::articles_embedding, %s, k => 3)", (query,))
        keywords = _ids(conn, """SELECT (hit).id FROM ai.hybrid_search(NULL::articles_embedding, %s, k => 3,
                                 vector_weight => 0) WHERE text_rank IS NOT NULL""", (query,))
        rows = conn.execute("""SELECT vector_rank, text_rank, (hit).id FROM ai.hybrid_search(NULL::articles_embedding,
                               %s, k => 3, candidates => 3)""", (query,)).fetchall()
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="must be at least k") as info:
            conn.execute("SELECT * FROM ai.hybrid_search(NULL::articles_embedding, %s, k => 10, candidates => 1)", (query,))
        assert "omit candidates" in info.value.diag.message_hint
    assert len(rows) == 3 and keywords == [11]
    assert {r[2] for r in rows} <= set(meaning) | set(keywords)
    assert all((vr is None or vr <= 3) and (tr is None or tr <= 3) for vr, tr, _ in rows)


def test_rag_system_prompt_reaches_the_model_and_the_answer_is_the_models(db, model_server_url):
    """What ai.rag sends (recorded at a loopback server): its system prompt and the prompt it
    returns; what it answers: the model's own reply to those messages, asked directly."""
    _articles(db)
    recorder = FaultProxy(model_server_url)
    try:
        with psycopg.connect(db) as conn:
            answer, sources, prompt = conn.execute("""
                SELECT * FROM ai.rag(NULL::articles_embedding, 'Which pet purrs when it is happy?', 'tiny-lm', k => 2,
                                     system_prompt => 'Answer in one word.', base_url => %s,
                                     options => '{"num_predict": 8, "temperature": 0}')""", (recorder.url,)).fetchone()
            [sent] = recorder.posts("/api/chat")
            messages = sent["json"]["messages"]
            assert messages[0] == {"role": "system", "content": "Answer in one word."}
            assert messages[-1]["role"] == "user" and messages[-1]["content"] == prompt
            assert [s["key"]["id"] for s in sources][0] == 1
            direct = conn.execute("""SELECT ai.ollama_chat_complete('tiny-lm', %s::jsonb,
                                     chat_options => '{"num_predict": 8, "temperature": 0}')->'message'->>'content'""",
                                  (json.dumps(messages),)).fetchone()[0]
        assert answer and answer == direct
    finally:
        recorder.close()


def test_a_cached_query_is_answered_while_the_model_server_is_down(db, app_role, model_server_url):
    """The query was embedded once (and cached for this role); then the model server goes away:
    the same search still answers, as a non-superuser; a new query says the server is down."""
    _articles(db)
    server = FaultProxy(model_server_url)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("GRANT SELECT ON articles TO app_user")
        conn.execute("""SELECT ai.create_vectorizer('articles'::regclass, name => 'behind', destination => 'articles_behind',
            loading => ai.loading_column('body'), scheduling => ai.scheduling_none(), grant_to => ARRAY['app_user'],
            embedding => ai.embedding_ollama('all-minilm', 384, base_url => %s))""", (server.url,))
    execute_vectorizer(db, "behind")
    question = "Which pet purrs when it is happy?"
    search = "SELECT (hit).id FROM ai.semantic_search(NULL::articles_behind, %s, k => 3) ORDER BY rank"
    with psycopg.connect(app_role) as conn:
        before = _ids(conn, search, (question,))
    server.close()  # the model server is down
    with psycopg.connect(app_role) as conn:
        conn.execute("SET ai.http_retries = 0")
        assert _ids(conn, search, (question,)) == before and before[0] == 1
        # ai.vectorizer_embed answers the cached query too (from SQL, without Python).
        assert conn.execute("SELECT vector_dims(ai.vectorizer_embed('behind', %s))", (question,)).fetchone()[0] == 384
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection, match="cannot reach"):
            conn.execute(search, ("A question never asked before",))
        conn.rollback()
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection, match="cannot reach"):
            conn.execute("SELECT ai.vectorizer_embed('behind', 'Another question never asked')")


def test_a_where_clause_names_the_callers_functions_with_their_schema(background_db):
    """Search functions run with search_path pinned (pg_catalog, pg_temp), like every ai
    function: a where_clause calls the caller's own function by its schema, and the caller's
    search_path cannot redirect a name inside a search. As the table owner (not a superuser),
    in a database that is not pg_cron's, with its own schema first on its search_path."""
    owner = psycopg.conninfo.make_conninfo(role_dsn(background_db, APP_OWNER), options="-c search_path=app")
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes_sp (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL)")
        conn.execute("INSERT INTO notes_sp VALUES (1, 'Cats', 'Cats purr when they are content.'), "
                     "(2, 'Dogs', 'Dogs enjoy long walks and playing fetch.')")
        conn.execute("CREATE FUNCTION is_dog(title text) RETURNS boolean LANGUAGE sql AS $$ SELECT title = 'Dogs' $$")
        conn.execute("""SELECT ai.create_vectorizer('notes_sp'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_none(),
            scheduling => ai.scheduling_none())""")
    execute_vectorizer(owner, "notes_sp_embedding")
    searches = ("ai.semantic_search(NULL::notes_sp_embedding, 'a purring pet', where_clause => %s)",
                "ai.hybrid_search(NULL::notes_sp_embedding, 'a purring pet', where_clause => %s)",
                "ai.text_search(NULL::notes_sp_embedding, 'walks', where_clause => %s)")
    with psycopg.connect(owner, autocommit=True) as conn:
        for search in searches:
            assert [r[0] for r in conn.execute(f"SELECT (hit).id FROM {search}", ("app.is_dog(title)",))] == [2]
            with pytest.raises(psycopg.errors.UndefinedFunction, match="is_dog"):
                conn.execute(f"SELECT (hit).id FROM {search}", ("is_dog(title)",))
