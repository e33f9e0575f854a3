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
