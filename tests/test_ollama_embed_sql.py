"""The first proof through the whole stack: SQL → PL/Python → model server → vector."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from pgweave_testing.helpers import vec
from pgweave_testing.models import reference_vectors


def _cosine(a, b) -> float:
    a, b = np.asarray(vec(a), dtype=np.float64), np.asarray(vec(b), dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_both_providers_reproduce_the_shipped_reference_vectors(app_role):
    """The vectors in tests/data/reference_vectors.json were computed once, outside any test run:
    the model server, reached from SQL by a non-superuser, returns them for their texts."""
    reference = reference_vectors()
    texts = list(reference)
    with psycopg.connect(app_role) as conn:
        register_vector(conn)
        for function in ("ai.ollama_embed", "ai.openai_embed"):
            rows = conn.execute(f"SELECT index, embedding FROM {function}('all-minilm', %s::text[]) ORDER BY index",
                                (texts,)).fetchall()
            assert [r[0] for r in rows] == list(range(len(texts)))
            worst = min(_cosine(emb, reference[text]) for (_, emb), text in zip(rows, texts))
            assert worst > 0.9999, f"{function} drifted from the reference vectors (cosine {worst:.5f})"


def test_ollama_embed_matches_sentence_transformers(db, st_model):
    with psycopg.connect(db) as conn:
        register_vector(conn)
        (embedding,) = conn.execute("SELECT ai.ollama_embed('all-minilm', 'hello world')").fetchone()
        assert conn.execute(
            "SELECT vector_dims(ai.ollama_embed('all-minilm', 'hello world'))").fetchone()[0] == 384
    direct = st_model.encode("hello world", normalize_embeddings=True)
    assert len(vec(embedding)) == 384
    assert _cosine(embedding, direct) > 0.9999


def test_batch_form_embeds_many_texts_in_order(db, st_model):
    texts = ["the cat sat on the mat", None, "stock markets fell sharply"]
    with psycopg.connect(db) as conn:
        register_vector(conn)
        rows = conn.execute(
            "SELECT index, embedding FROM ai.ollama_embed('all-minilm', %s::text[]) ORDER BY index",
            (texts,)).fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]
    assert rows[1][1] is None
    for (_, emb), text in zip([rows[0], rows[2]], [texts[0], texts[2]]):
        assert _cosine(emb, st_model.encode(text)) > 0.9999


def test_null_text_gives_null_without_a_model_call(db):
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT ai.ollama_embed('all-minilm', NULL::text)").fetchone()[0] is None


def test_unreachable_server_error_names_the_url_and_the_fix(db):
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as info:
            conn.execute("SELECT ai.ollama_embed('all-minilm', 'x', host => 'http://127.0.0.1:9')")
    diag = info.value.diag
    assert "cannot reach the model server at http://127.0.0.1:9" in diag.message_primary
    assert "pgweave serve" in diag.message_hint and "ai.ollama_host" in diag.message_hint


def test_unknown_model_error_lists_available_models(db):
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.errors.UndefinedObject) as info:
            conn.execute("SELECT ai.ollama_embed('no-such-model', 'x')")
    assert "no-such-model" in info.value.diag.message_primary
    assert "all-minilm" in info.value.diag.message_hint
