"""Bad input, case by case: a clear error or a documented result, and nothing lost.

Each case is (name, SQL, expected) where expected is ("error", text in the message or hint)
or ("value", the single value the statement returns). Cases run in one database that has
t(id int PRIMARY KEY, title text, body text) and a view v.
"""

from __future__ import annotations

import psycopg
import pytest

SETUP = """
CREATE TABLE t (id int PRIMARY KEY, title text, body text);
CREATE TABLE nokey (body text);
CREATE VIEW v AS SELECT * FROM t;
"""
VEC = "SELECT ai.create_vectorizer('t'::regclass, "
EMB = "embedding => ai.embedding_ollama('all-minilm', 384)"

CASES = [
    # model calling: texts
    ("null text", "SELECT ai.ollama_embed('all-minilm', NULL::text) IS NULL", ("value", True)),
    ("empty text", "SELECT vector_dims(ai.ollama_embed('all-minilm', ''))", ("value", 384)),
    ("whitespace text", "SELECT vector_dims(ai.ollama_embed('all-minilm', E'  \\n\\t '))", ("value", 384)),
    ("10 MB text", "SELECT vector_dims(ai.ollama_embed('all-minilm', repeat('abcdefghi ', 1048576)))", ("value", 384)),
    ("unicode", "SELECT vector_dims(ai.ollama_embed('all-minilm', '数据库 🐘 naïve Ωmega'))", ("value", 384)),
    ("control characters", "SELECT vector_dims(ai.ollama_embed('all-minilm', E'a\\x01b\\x02c\\x1f'))", ("value", 384)),
    ("batch of NULLs", "SELECT count(*) FILTER (WHERE embedding IS NULL) FROM ai.ollama_embed('all-minilm', ARRAY[NULL, NULL]::text[])", ("value", 2)),
    ("empty batch", "SELECT count(*) FROM ai.ollama_embed('all-minilm', ARRAY[]::text[])", ("value", 0)),
    ("openai NULL text", "SELECT ai.openai_embed('all-minilm', NULL::text) IS NULL", ("value", True)),
    # model calling: models, hosts, options
    ("NULL model", "SELECT ai.ollama_embed(NULL, 'x')", ("error", "model must not be NULL")),
    ("empty model", "SELECT ai.ollama_embed('', 'x')", ("error", "model must not be NULL")),
    ("unknown model", "SELECT ai.ollama_embed('nomic-embed-text', 'x')", ("error", "available models")),
    ("unreachable host", "SELECT ai.ollama_embed('all-minilm', 'x', host => 'http://127.0.0.1:9')", ("error", "cannot reach")),
    ("host without scheme", "SELECT ai.ollama_embed('all-minilm', 'x', host => '127.0.0.1:9')", ("error", "http://127.0.0.1:9")),
    ("malformed host", "SELECT ai.ollama_embed('all-minilm', 'x', host => 'http://')", ("error", "model server")),
    ("options not an object", "SELECT ai.ollama_embed('all-minilm', 'x', embedding_options => '[1]')", ("error", "must be a JSON object")),
    ("zero dimensions", "SELECT ai.openai_embed('all-minilm', 'x', dimensions => 0)", ("error", "dimensions must be positive")),
    ("too many dimensions", "SELECT ai.openai_embed('all-minilm', 'x', dimensions => 5000)", ("error", "rejected the request")),
    ("messages not an array", "SELECT ai.ollama_chat_complete('tiny-lm', '{}')", ("error", "must be a JSON array")),
    ("messages empty", "SELECT ai.ollama_chat_complete('tiny-lm', '[]')", ("error", "non-empty")),
    ("message without role", "SELECT ai.openai_chat_complete('tiny-lm', '[{\"content\": \"x\"}]')", ("error", "role")),
    ("tools not an array", "SELECT ai.ollama_chat_complete('tiny-lm', '[{\"role\": \"user\", \"content\": \"x\"}]', tools => '{}')", ("error", "tools must be a JSON array")),
    ("NULL prompt", "SELECT ai.ollama_generate('tiny-lm', NULL)", ("error", "prompt must not be NULL")),
    ("bad timeout setting", "SET ai.http_timeout = 'soon'; SELECT ai.ollama_embed('all-minilm', 'x')", ("error", "is not a positive number")),
    ("bad secret name", "SELECT ai.openai_embed('all-minilm', 'x', api_key_name => 'bad name; DROP')", ("error", "not a valid secret name")),
    # declaring vectorizers
    ("NULL source", "SELECT ai.create_vectorizer(NULL, embedding => ai.embedding_ollama('all-minilm', 384))", ("error", "source must not be NULL")),
    ("table without primary key", "SELECT ai.create_vectorizer('nokey'::regclass, loading => ai.loading_column('body'), " + EMB + ")", ("error", "ADD PRIMARY KEY")),
    ("a view as source", "SELECT ai.create_vectorizer('v'::regclass, loading => ai.loading_column('body'), " + EMB + ")", ("error", "is not a table")),
    ("missing column", VEC + "loading => ai.loading_column('nope'), " + EMB + ")", ("error", "does not exist")),
    ("template names a missing column", VEC + "loading => ai.loading_column('body'), " + EMB + ", formatting => ai.formatting_python_template('$author: $chunk'))", ("error", "unknown column")),
    ("overlap equal to size repeats every chunk", VEC + "name => 'eq', destination => 'eq', loading => ai.loading_column('body'), " + EMB + ", chunking => ai.chunking_recursive_character_text_splitter(100, 100), scheduling => ai.scheduling_none()) > 0", ("error", "half of chunk_size")),
    ("overlap above size", VEC + "loading => ai.loading_column('body'), " + EMB + ", chunking => ai.chunking_recursive_character_text_splitter(100, 101))", ("error", "chunk_overlap")),
    ("zero chunk size", VEC + "loading => ai.loading_column('body'), " + EMB + ", chunking => ai.chunking_character_text_splitter(0, 0))", ("error", "chunk_size positive")),
    ("negative overlap", VEC + "loading => ai.loading_column('body'), " + EMB + ", chunking => ai.chunking_recursive_character_text_splitter(100, -1))", ("error", "chunk_overlap")),
    ("zero dimensions in config", VEC + "loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 0))", ("error", "dimensions must be between")),
    ("negative dimensions", VEC + "loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', -3))", ("error", "dimensions must be between")),
    ("no model in config", VEC + "loading => ai.loading_column('body'), embedding => ai.embedding_ollama('', 384))", ("error", "model must be named")),
    ("no embedding", VEC + "loading => ai.loading_column('body'))", ("error", "embedding is required")),
    ("no column at all", VEC + EMB + ")", ("error", "no column to embed")),
    ("two different columns", VEC + "loading => ai.loading_column('body'), " + EMB + ", chunking => ai.chunking_recursive_character_text_splitter('title'))", ("error", "loading names column")),
    ("zero batch size", VEC + "loading => ai.loading_column('body'), " + EMB + ", processing => ai.processing_default(batch_size => 0))", ("error", "batch_size")),
    ("unknown embedding implementation", VEC + "loading => ai.loading_column('body'), embedding => '{\"implementation\": \"x\", \"model\": \"m\", \"dimensions\": 3}'::jsonb)", ("error", "unknown embedding implementation")),
    ("empty destination", VEC + "loading => ai.loading_column('body'), " + EMB + ", destination => '')", ("error", "must not be empty")),
    ("destination too long for its store", VEC + "loading => ai.loading_column('body'), " + EMB + ", destination => '" + "v" * 60 + "')", ("error", "longer than PostgreSQL's 63 bytes")),
    ("NULL vectorizer processed", "CALL ai.execute_vectorizer(NULL::int)", ("error", "must not be NULL")),
    ("destination already exists", VEC + "loading => ai.loading_column('body'), " + EMB + ", destination => 'v')", ("error", "already exists")),
    ("unknown vectorizer dropped", "SELECT ai.drop_vectorizer('nope')", ("error", "does not exist")),
    ("unknown vectorizer retried", "SELECT ai.retry_failed('nope')", ("error", "does not exist")),
    ("unknown vectorizer id", "SELECT ai.vectorizer_queue_pending(424242)", ("error", "does not exist")),
]


@pytest.fixture(scope="module")
def bad_db(pg_server, template_dsn, model_server_url):
    import uuid

    name = f"bad_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE pgweave_template")
        conn.execute(f"ALTER DATABASE {name} SET ai.ollama_host = '{model_server_url}'")
        conn.execute(f"ALTER DATABASE {name} SET ai.openai_base_url = '{model_server_url}/v1'")
    dsn = psycopg.conninfo.make_conninfo(pg_server, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SETUP)
    yield dsn
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.parametrize("name,sql,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(bad_db, name, sql, expected):
    kind, want = expected
    with psycopg.connect(bad_db) as conn:
        if kind == "value":
            assert conn.execute(sql).fetchone()[0] == want
            return
        with pytest.raises(psycopg.Error) as info:
            conn.execute(sql)
    diag = info.value.diag
    said = f"{diag.message_primary} {diag.message_hint or ''}"
    assert want in said, said
    assert diag.message_hint or kind == "error" and "does not exist" in said, f"no hint: {said}"


@pytest.mark.parametrize("ddl", [
    'CREATE TABLE "select" ("Semi;colon" int PRIMARY KEY, "Mixed Case ""quoted""" text)',
    'CREATE TABLE "' + "x" * 63 + '" ("Semi;colon" int PRIMARY KEY, "Mixed Case ""quoted""" text)',
])
def test_odd_identifiers_for_tables_columns_and_names(db, ddl):
    table = ddl.split('"')[1]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(ddl)
        conn.execute(f'INSERT INTO "{table}" VALUES (1, %s)', ("odd but fine",))
        conn.execute("""SELECT ai.create_vectorizer(%s::regclass, name => 'Name; with "quotes" and spaces',
            destination => 'emb', loading => ai.loading_column('Mixed Case "quoted"'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none())""",
                     (f'"{table}"',))
        conn.execute("""CALL ai.execute_vectorizer('Name; with "quotes" and spaces')""")
        assert conn.execute('SELECT "Semi;colon", chunk FROM emb').fetchone() == (1, "odd but fine")


def test_dimension_mismatch_keeps_items_and_says_why(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE d (id int PRIMARY KEY, body text); INSERT INTO d VALUES (1, 'x')")
        conn.execute("""SELECT ai.create_vectorizer('d'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 768), scheduling => ai.scheduling_none())""")
        conn.execute("CALL ai.execute_vectorizer('d_embedding')")
        message = conn.execute("SELECT message FROM ai.vectorizer_errors").fetchone()[0]
        assert "returned 384 dimensions" in message and "768" in message
        assert conn.execute("SELECT pending_items FROM ai.vectorizer_status").fetchone()[0] == 1


def _last_error(conn) -> tuple[str, dict]:
    return conn.execute("SELECT message, details FROM ai.vectorizer_errors ORDER BY error_id DESC LIMIT 1").fetchone()


def test_retyped_source_column_is_refused_and_nothing_changes(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE d (id int PRIMARY KEY, body varchar(50)); INSERT INTO d VALUES (1, 'typed text')")
        conn.execute("""SELECT ai.create_vectorizer('d'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none())""")
        # Postgres refuses to retype a column a view shows: documented, and nothing changes.
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="used by a view"):
            conn.execute("ALTER TABLE d ALTER COLUMN body TYPE text")
        conn.execute("CALL ai.execute_vectorizer('d_embedding')")
        assert conn.execute("SELECT chunk FROM d_embedding").fetchone()[0] == "typed text"


def _titled_docs(conn, template: str, row: tuple) -> None:
    """d(id, title, body, views) holding one row, with a vectorizer on body using the template, drained."""
    conn.execute("CREATE TABLE d (id int PRIMARY KEY, title text, body text, views int)")
    conn.execute("INSERT INTO d VALUES (%s, %s, %s, 0)", row)
    conn.execute("""SELECT ai.create_vectorizer('d'::regclass, loading => ai.loading_column('body'),
        embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
        formatting => ai.formatting_python_template(%s))""", (template,))
    conn.execute("CALL ai.execute_vectorizer('d_embedding')")


def test_renamed_key_loaded_and_template_columns_are_followed(db):
    with psycopg.connect(db, autocommit=True) as conn:
        _titled_docs(conn, "${title}: $chunk ($title)", (1, "One", "first body"))
        conn.execute("ALTER TABLE d RENAME COLUMN body TO content")
        conn.execute("ALTER TABLE d RENAME COLUMN title TO heading")
        conn.execute('ALTER TABLE d RENAME COLUMN id TO "Doc Id"')
        config, pk = conn.execute("SELECT config, source_pk FROM ai.vectorizer").fetchone()
        assert config["loading"]["column_name"] == "content"
        assert config["formatting"]["template"] == "${heading}: $chunk ($heading)"
        assert [k["attname"] for k in pk] == ["Doc Id"]
        with pytest.raises(psycopg.errors.DuplicateColumn, match="cannot be renamed"):  # the store has one
            conn.execute('ALTER TABLE d RENAME COLUMN "Doc Id" TO chunk')
        # The application's writes go on (the trigger follows), and nothing is embedded again.
        conn.execute("UPDATE d SET heading = 'One' WHERE \"Doc Id\" = 1")  # no change: no work
        assert conn.execute("SELECT ai.vectorizer_queue_pending('d_embedding', exact => true)").fetchone()[0] == 0
        conn.execute("UPDATE d SET content = 'first body, edited' WHERE \"Doc Id\" = 1")
        conn.execute("INSERT INTO d VALUES (2, 'Two', 'second body', 0)")
        conn.execute("DELETE FROM d WHERE \"Doc Id\" = 2")
        conn.execute("INSERT INTO d VALUES (3, 'Three', 'third body', 0)")
    with psycopg.connect(db, autocommit=True) as conn:  # a new session prepares from the catalog
        conn.execute("CALL ai.execute_vectorizer('d_embedding')")
        rows = conn.execute('SELECT "Doc Id", heading, chunk FROM d_embedding ORDER BY 1').fetchall()
        assert rows == [(1, "One", "first body, edited"), (3, "Three", "third body")]
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0] == 0
        hits = conn.execute("""SELECT (s.hit)."Doc Id" FROM ai.semantic_search(NULL::d_embedding, 'third', k => 1) s""").fetchall()
        assert hits == [(3,)]
        conn.execute('ALTER TABLE d RENAME COLUMN content TO body')  # and back
        conn.execute("UPDATE d SET heading = 'Three' WHERE \"Doc Id\" = 3")
        assert conn.execute("SELECT ai.vectorizer_queue_pending('d_embedding', exact => true)").fetchone()[0] == 0
        # Renames cost no model call: the first row, its edit and the third row, nothing else.
        assert conn.execute("SELECT chunks_embedded FROM ai.vectorizer_status").fetchone()[0] == 3


def test_template_column_renamed_beyond_a_template_keeps_writes_and_says_why(db):
    with psycopg.connect(db, autocommit=True) as conn:
        _titled_docs(conn, "$title: $chunk", (1, "T", "b"))
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute('ALTER TABLE d RENAME COLUMN title TO "Title Text"')
        assert any("cannot be written as $name" in n for n in notices), notices
        conn.execute("UPDATE d SET body = 'changed' WHERE id = 1")  # writes go on, the change is queued
        conn.execute('UPDATE d SET "Title Text" = \'T2\' WHERE id = 1')
        assert conn.execute("SELECT pending_items FROM ai.vectorizer_status").fetchone()[0] == 2  # one per update
    # Every new session (each pg_cron run and worker) cannot prepare the statements: the error says
    # what to do, and it is recorded where status looks, not only in pg_cron's run log.
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn) as info:
            conn.execute("CALL ai.execute_vectorizer('d_embedding')")
        assert "cannot prepare its statements" in info.value.diag.message_primary
        assert "Rename it back" in info.value.diag.message_hint
        message, details = _last_error(conn)
        assert "cannot prepare its statements" in message and "plpy" not in message
        assert "Rename it back" in details["hint"]
        assert conn.execute("SELECT last_error FROM ai.vectorizer_status").fetchone()[0] == message
        assert conn.execute("SELECT pending_items FROM ai.vectorizer_status").fetchone()[0] == 2
        # The background scheduler's step fails the same way, and records it too.
        errors = conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0]
        vid = conn.execute("SELECT id FROM ai.vectorizer").fetchone()[0]
        step = conn.execute("SELECT ai._engine_step(%s, '{}', true, 'background', true)", (vid,)).fetchone()[0]
        assert "cannot prepare its statements" in step["error"] and "Rename it back" in step["hint"]
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0] == errors + 1
        conn.execute('ALTER TABLE d RENAME COLUMN "Title Text" TO title')  # renamed back: the items waited
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT ai.retry_failed('d_embedding')").fetchone()[0] == 0  # none parked: due now
        conn.execute("CALL ai.execute_vectorizer('d_embedding')")
        assert conn.execute("SELECT pending_items FROM ai.vectorizer_status").fetchone()[0] == 0
        assert conn.execute("SELECT title, chunk FROM d_embedding").fetchone() == ("T2", "changed")
        conn.execute("UPDATE d SET views = views + 1")  # watched as before again: no work
        assert conn.execute("SELECT pending_items FROM ai.vectorizer_status").fetchone()[0] == 0


def test_renamed_and_moved_source_table_is_followed(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE before_name (id int PRIMARY KEY, body text); INSERT INTO before_name VALUES (1, 'one')")
        conn.execute("""SELECT ai.create_vectorizer('before_name'::regclass, name => 'followed',
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            scheduling => ai.scheduling_none())""")
        conn.execute("ALTER TABLE before_name RENAME TO \"After Name\"")
        conn.execute("CREATE SCHEMA elsewhere; ALTER TABLE \"After Name\" SET SCHEMA elsewhere")
        assert conn.execute("SELECT source_schema, source_table FROM ai.vectorizer WHERE name = 'followed'"
                            ).fetchone() == ("elsewhere", "After Name")
        conn.execute("INSERT INTO elsewhere.\"After Name\" VALUES (2, 'two')")
    with psycopg.connect(db, autocommit=True) as conn:  # a new session prepares from the catalog
        conn.execute("CALL ai.execute_vectorizer('followed')")
        assert conn.execute("SELECT id, chunk FROM before_name_embedding ORDER BY id").fetchall() == [(1, "one"), (2, "two")]
        assert conn.execute("SELECT source_table FROM ai.vectorizer_status WHERE name = 'followed'"
                            ).fetchone()[0] == 'elsewhere."After Name"'
        conn.execute("DROP TABLE elsewhere.\"After Name\" CASCADE")  # the drop trigger finds it by its new name
        assert conn.execute("SELECT count(*) FROM ai.vectorizer WHERE name = 'followed'").fetchone()[0] == 0


def test_unreachable_pinned_base_url_names_the_config_not_the_setting(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE p (id int PRIMARY KEY, body text); INSERT INTO p VALUES (1, 'x')")
        conn.execute("""SELECT ai.create_vectorizer('p'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384, base_url => 'http://127.0.0.1:9'),
            scheduling => ai.scheduling_none())""")
        conn.execute("CALL ai.execute_vectorizer('p_embedding')")
        message, details = _last_error(conn)
        assert "cannot reach the model server at http://127.0.0.1:9" in message
        assert "pins base_url" in details["hint"] and "ai.ollama_host" not in details["hint"]
        assert conn.execute("SELECT pending_items FROM ai.vectorizer_status").fetchone()[0] == 1


def test_a_queue_or_the_primary_key_a_vectorizer_needs_cannot_be_dropped_from_under_it(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE q (id int PRIMARY KEY, body text); INSERT INTO q VALUES (1, 'x')")
        vid = conn.execute("""SELECT ai.create_vectorizer('q'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none())""").fetchone()[0]
        with pytest.raises(psycopg.errors.DependentObjectsStillExist, match="is the queue of vectorizer") as info:
            conn.execute(f"DROP TABLE ai._vectorizer_q_{vid}")
        assert "ai.drop_vectorizer" in info.value.diag.message_hint
        with pytest.raises(psycopg.errors.DependentObjectsStillExist, match="keys its chunks by the primary key"):
            conn.execute("ALTER TABLE q DROP CONSTRAINT q_pkey")
        conn.execute("INSERT INTO q VALUES (2, 'writes to the source go on')")
        assert conn.execute("SELECT ai.vectorizer_queue_pending(%s)", (vid,)).fetchone()[0] == 2
