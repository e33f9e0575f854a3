"""The query-embedding cache: a search query's embedding, from the cache or from the model.

A query is embedded with its vectorizer's own embedding config, by the request code the
engine uses (``embedding.embed_request``), so the query and the chunks it is compared with
always come from the same model, host and dimensions. Embeddings are kept in
``ai._query_embedding_cache``, whose rows only its owner reads or writes
(sql/functions/51_query_cache.sql). Any role may read its own entries through
ai._query_cache_read (the searches do, from SQL; the key is ai._query_cache_key's). Only
the search code writes, through ai._query_cache_write, a SECURITY DEFINER gateway that answers
only while this module is asking (``gateway``) and stores only the vector this backend has just
received from the model for that key (``_fresh``): a caller can neither choose what is stored
nor call it from SQL. Keys are scoped to the login role; the query text is never stored, only
a hash of it. The number of entries is bounded by the database's setting (ai._query_cache_size).
"""

from __future__ import annotations

import json
from typing import Any

import plpy

from . import embedding, gateway
from .errors import fail

_PREPARED: dict[str, Any] = {}
_fresh: dict[str, str] = {}    # the model's vector (pgvector text) for a key, until it is written


def prepared(sql: str, types: list[str]) -> Any:
    """A prepared statement, kept for the life of the backend (and of this code version)."""
    if sql not in _PREPARED:
        _PREPARED[sql] = plpy.prepare(sql, types)
    return _PREPARED[sql]


def vectorizer_config(vectorizer_id: int) -> tuple[str, dict]:
    """The vectorizer's name and config (or the error of ai._vectorizer)."""
    rows = plpy.execute(prepared("SELECT name, config FROM ai.vectorizer WHERE id = $1", ["int"]),
                        [vectorizer_id])
    if not rows:
        plpy.execute(prepared("SELECT ai._vectorizer($1)", ["int"]), [vectorizer_id])
    return rows[0]["name"], json.loads(rows[0]["config"])


def cache_key(emb: dict, text: str) -> str:
    """The query's key in the cache (ai._query_cache_key, which the searches use too)."""
    return plpy.execute(prepared("SELECT ai._query_cache_key($1::jsonb, $2) AS k", ["text", "text"]),
                        [json.dumps(emb), text])[0]["k"]


_CACHE_HINT = ("search with ai.semantic_search / ai.hybrid_search, or embed a query with "
               "ai.vectorizer_embed: they use the cache")


def write(key: str) -> str:
    """ai._query_cache_write: store the model's fresh vector for ``key``, as the cache's owner."""
    gateway.require("_query_cache_write", _CACHE_HINT)
    vector = _fresh.pop(key, None)
    if vector is None:
        fail("no embedding was just made for this key", sqlstate="42501",
             hint="the cache stores only the vectors the search code receives from the model")
    return plpy.execute(prepared("SELECT ai._query_cache_put($1, $2::real[])::text AS e", ["text", "text"]),
                        [key, "{" + vector[1:-1] + "}"])[0]["e"]  # vector text […] → real[] text {…}


def query_embedding(emb: dict, text: str, vectorizer_name: str) -> str:
    """The embedding of ``text`` as pgvector text, from the model, then cached. Its callers
    (ai.vectorizer_embed and the searches, through ai._vectorizer_embed) have read the cache
    in SQL already: this is their miss path."""
    key = cache_key(emb, text)
    vector = embedding.embed_request(emb, [text], vectorizer_name)[0]
    _fresh.clear()
    _fresh[key] = vector
    try:
        with gateway.opened("_query_cache_write"):
            stored = plpy.execute(prepared("SELECT ai._query_cache_write($1) AS e", ["text"]), [key])[0]["e"]
    finally:
        _fresh.clear()
    return "[" + stored[1:-1] + "]"


def vectorizer_query_embedding(vectorizer_id: int, text: str) -> str:
    """The embedding of a search query for one vectorizer, from the model (then cached)."""
    name, config = vectorizer_config(vectorizer_id)
    return query_embedding(config["embedding"], text, name)
