"""Search: the embedding of a query (cached), and the prompt and the answer of RAG.

A query is embedded with its vectorizer's own embedding config, by the request code the
engine uses (``engine.embed_request``), so the query and the chunks it is compared with
always come from the same model, host and dimensions. Query embeddings are cached in
``ai._query_embedding_cache``, reached only through two SECURITY DEFINER functions
(sql/functions/50_search.sql) that scope every key to the login role; the query text is
never stored, only a hash of it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import plpy

from . import engine, formatting, ollama, openai, settings
from .errors import fail
from .vectors import to_pgvector

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. Cite the sources "
    "you use as [1], [2], and so on. If the sources do not contain the answer, say that you "
    "do not know.")

_PREPARED: dict[str, Any] = {}


def _prepared(sql: str, types: list[str]) -> Any:
    """A prepared statement, kept for the life of the backend (and of this code version)."""
    if sql not in _PREPARED:
        _PREPARED[sql] = plpy.prepare(sql, types)
    return _PREPARED[sql]


def vectorizer_config(vectorizer_id: int) -> tuple[str, dict]:
    """The vectorizer's name and config (or the error of ai._vectorizer)."""
    rows = plpy.execute(_prepared("SELECT name, config FROM ai.vectorizer WHERE id = $1", ["int"]),
                        [vectorizer_id])
    if not rows:
        plpy.execute(_prepared("SELECT ai._vectorizer($1)", ["int"]), [vectorizer_id])
    return rows[0]["name"], json.loads(rows[0]["config"])


def endpoint(emb: dict) -> str:
    """The URL the embedding request goes to, resolved now (argument, then setting, then default)."""
    if emb.get("implementation") == "ollama":
        return settings.ollama_host(emb.get("base_url"))
    if emb.get("implementation") == "openai":
        return settings.openai_base_url(emb.get("base_url"))
    fail(f"unknown embedding implementation {emb.get('implementation')!r}", sqlstate="22023",
         hint="use ai.embedding_ollama(...) or ai.embedding_openai(...)")


def cache_key(emb: dict, text: str) -> str:
    """Hash of everything that decides the vector: provider, model, resolved host, dimensions,
    options and the text. Another model, host or size can never share an entry."""
    material = json.dumps({"implementation": emb.get("implementation"), "model": emb.get("model"),
                           "endpoint": endpoint(emb), "dimensions": int(emb["dimensions"]),
                           "options": emb.get("options"), "text": text},
                          sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def query_embedding(emb: dict, text: str, vectorizer_name: str) -> str:
    """The embedding of ``text`` as pgvector text: from the cache, else from the model (then cached)."""
    key = cache_key(emb, text)
    cached = plpy.execute(_prepared("SELECT ai._query_cache_get($1) AS e", ["text"]), [key])[0]["e"]
    if cached is not None:
        return to_pgvector(cached)
    vector = engine.embed_request(emb, [text], vectorizer_name)[0]
    try:
        plpy.execute(_prepared("SELECT ai._query_cache_put($1, $2)", ["text", "real[]"]), [key, vector])
    except plpy.SPIError as exc:
        # A parallel worker cannot write; the vector is still right, only not remembered.
        if getattr(exc, "sqlstate", None) != "25000":
            raise
    return to_pgvector(vector)


def vectorizer_query_embedding(vectorizer_id: int, text: str) -> str:
    """The embedding of a search query for one vectorizer (cached)."""
    name, config = vectorizer_config(vectorizer_id)
    return query_embedding(config["embedding"], text, name)


def _text(value: Any) -> str:
    """A JSON value the way PostgreSQL's ::text shows it (what formatting templates saw)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def rag_prompt(vectorizer_id: int, question: str, hits_json: str) -> str:
    """The user message of a RAG call: the numbered sources, formatted like they were
    embedded (the vectorizer's formatting template), then the question."""
    _, config = vectorizer_config(vectorizer_id)
    blocks = []
    for hit in json.loads(hits_json or "[]"):
        row = {k: _text(v) for k, v in (hit.get("row") or {}).items()}
        text = formatting.format_chunk(config.get("formatting"), hit["chunk"], row)
        blocks.append(f"[{hit['n']}] {text}")
    sources = "\n\n".join(blocks) if blocks else "(no sources found)"
    return f"Sources:\n\n{sources}\n\nQuestion: {question}"


def rag_answer(vectorizer_id: int, model: str, implementation: str | None, base_url: str | None,
               api_key_name: str | None, system_prompt: str | None, prompt: str,
               options: Any) -> str | None:
    """Ask a chat model; by default the vectorizer's provider and host answer."""
    _, config = vectorizer_config(vectorizer_id)
    emb = config["embedding"]
    implementation = implementation or emb.get("implementation")
    if base_url is None and implementation == emb.get("implementation"):
        base_url = emb.get("base_url")
    messages = [{"role": "system", "content": system_prompt or DEFAULT_SYSTEM_PROMPT},
                {"role": "user", "content": prompt}]
    if implementation == "ollama":
        response = ollama.chat(model, messages, base_url, None, options)
        return (response.get("message") or {}).get("content")
    if implementation == "openai":
        params = ollama.json_arg(options, "options", dict) or {}
        response = openai.chat_complete(model, messages, None, api_key_name or emb.get("api_key_name"),
                                        base_url, **params)
        choices = response.get("choices") or [{}]
        return (choices[0].get("message") or {}).get("content")
    fail(f"unknown chat implementation {implementation!r}", sqlstate="22023",
         hint="pass implementation => 'ollama' or 'openai'")
