"""The data path from the model's answer to the store: exact vectors, short numbers, planned lookups."""

from __future__ import annotations

import httpx
import numpy as np
import psycopg
from pgweave_testing.helpers import APP_OWNER, execute_vectorizer, role_dsn, vec

TEXT = "VACUUM reclaims the storage occupied by dead tuples."


def test_the_model_server_prints_each_number_as_the_shortest_float32(model_server_url):
    body = httpx.post(model_server_url + "/api/embed", json={"model": "all-minilm", "input": [TEXT]},
                      timeout=60).text
    numbers = body.split('"embeddings":[[', 1)[1].split("]]", 1)[0].split(",")
    assert len(numbers) == 384
    for text in numbers:  # as few significant digits as name the float32 (numpy's shortest form)
        assert _digits(text) == _digits(str(np.float32(text))), text


def _digits(number: str) -> int:
    """Significant digits of a printed number."""
    return len(number.lstrip("-").split("e")[0].replace(".", "").lstrip("0"))


def test_a_stored_embedding_is_exactly_the_vector_the_model_sent(db, model_server_url):
    sent = np.asarray(httpx.post(model_server_url + "/api/embed", json={"model": "all-minilm", "input": [TEXT]},
                                 timeout=60).json()["embeddings"][0], dtype=np.float32)
    with psycopg.connect(db, autocommit=True) as conn:
        got = conn.execute("SELECT ai.ollama_embed('all-minilm', %s)::text", (TEXT,)).fetchone()[0]
        many = conn.execute("SELECT embedding::text FROM ai.ollama_embed('all-minilm', ARRAY[%s])",
                            (TEXT,)).fetchone()[0]
    assert np.array_equal(vec(got), sent)
    assert np.array_equal(vec(many), sent)


def test_a_new_store_has_planner_statistics_after_its_first_batch(background_db):
    owner = role_dsn(background_db, APP_OWNER)
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.stats_docs (id int PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO app.stats_docs SELECT i, 'row ' || i || ' about vacuum and analyze' "
                     "FROM generate_series(1, 60) i")
        conn.execute("""SELECT ai.create_vectorizer('app.stats_docs'::regclass, name => 'stats_docs_embedding',
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            chunking => ai.chunking_none(), scheduling => ai.scheduling_none())""")
        assert conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'app.stats_docs_embedding_store'::regclass"
                            ).fetchone()[0] < 0  # never analyzed: the planner would guess
    execute_vectorizer(owner, "stats_docs_embedding")
    with psycopg.connect(owner, autocommit=True) as conn:
        tuples = conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'app.stats_docs_embedding_store'::regclass"
                              ).fetchone()[0]
    assert tuples > 0  # analyzed once, after the first batch: the lookups by key are planned on statistics


def _toasted_and_target(conn: psycopg.Connection, store: str) -> tuple[int, list | None]:
    """Rows in a store's TOAST table, and the store's storage options."""
    toast, options = conn.execute("SELECT reltoastrelid::regclass::text, reloptions FROM pg_class WHERE oid = %s::regclass",
                                  (store,)).fetchone()
    return conn.execute(f"SELECT count(*) FROM {toast}").fetchone()[0], options


def test_embeddings_stay_in_the_row_also_in_stores_made_before_the_upgrade(empty_db, model_server_url):
    """A 384-dimension vector beside an ~800-character chunk passes the default TOAST threshold:
    stores keep them inline (a second insert when stored and a second read per search saved).
    Revision 0010 gives the setting to stores that exist; its downgrade takes it back."""
    from alembic import command

    from pgweave.install import alembic_config, engine_for, install

    install(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {psycopg.conninfo.conninfo_to_dict(empty_db)['dbname']} "
                     f"SET ai.ollama_host = '{model_server_url}'")
        conn.execute("DROP ROLE IF EXISTS inline_owner; CREATE ROLE inline_owner LOGIN")
        conn.execute("SELECT ai.grant_ai_usage('inline_owner'); GRANT CREATE ON SCHEMA public TO inline_owner")
    owner = role_dsn(empty_db, "inline_owner")
    body = " ".join(f"Sentence {i} tells how VACUUM and ANALYZE keep table statistics fresh." for i in range(12))
    with psycopg.connect(owner, autocommit=True) as conn:
        for name in ("old_docs", "new_docs"):
            conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, body text NOT NULL)")
            conn.execute(f"INSERT INTO {name} SELECT i, %s || i FROM generate_series(1, 6) i", (body,))
        conn.execute("""SELECT ai.create_vectorizer('old_docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_none(),
            scheduling => ai.scheduling_none())""")
    engine = engine_for(empty_db)
    with engine.begin() as connection:  # back to 0009: the store is as stores were before 0010
        command.downgrade(alembic_config(connection), "0009")
    engine.dispose()
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert _toasted_and_target(conn, "old_docs_embedding_store")[1] is None
    install(empty_db)  # 0009 -> head
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("""SELECT ai.create_vectorizer('new_docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), chunking => ai.chunking_none(),
            scheduling => ai.scheduling_none())""")
    for name in ("old_docs_embedding", "new_docs_embedding"):
        execute_vectorizer(owner, name)
    with psycopg.connect(empty_db, autocommit=True) as conn:  # (the TOAST schema is the superuser's to read)
        for store in ("old_docs_embedding_store", "new_docs_embedding_store"):
            count, shortest = conn.execute(f"SELECT count(*), min(length(chunk)) FROM {store}").fetchone()
            assert count == 6 and shortest > 800
            toasted, options = _toasted_and_target(conn, store)
            assert options == ["toast_tuple_target=8160"] and toasted == 0, (store, toasted, options)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("SELECT ai.drop_vectorizer(name, true) FROM ai.vectorizer")
        conn.execute("DROP OWNED BY inline_owner")
