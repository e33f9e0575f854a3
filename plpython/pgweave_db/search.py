"""Search: the query's embedding (cached), the search statement, and RAG's prompt and answer.

A query is embedded with its vectorizer's own embedding config, by the request code the
engine uses (``embedding.embed_request``), so the query and the chunks it is compared with
always come from the same model, host and dimensions. Query embeddings are cached in
``ai._query_embedding_cache``, reached only through two SECURITY DEFINER functions
(sql/functions/50_search.sql) that scope every key to the login role; the query text is
never stored, only a hash of it.

``search_statement`` builds the statement the search functions of 50_search.sql run as the
caller: over the vectorizer's view (security_invoker), so grants and row-level security of
the source apply before ranking. Identifiers and filter values are quoted here and only here.

Errors are raised with ``errors.fail`` (SQLSTATE, hint, detail) like everywhere else; the
entry points made by ai._python_entry_point show them without PL/Python's ``plpy.Error:``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import plpy

from . import embedding, formatting, ollama, openai, settings
from .errors import fail

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. Cite the sources "
    "you use as [1], [2], and so on. If the sources do not contain the answer, say that you "
    "do not know.")

_PREPARED: dict[str, Any] = {}
_OPERATORS = {"vector_l2_ops": "<->", "vector_ip_ops": "<#>", "vector_l1_ops": "<+>"}


def _prepared(sql: str, types: list[str]) -> Any:
    """A prepared statement, kept for the life of the backend (and of this code version)."""
    if sql not in _PREPARED:
        _PREPARED[sql] = plpy.prepare(sql, types)
    return _PREPARED[sql]


def _q(name: str) -> str:
    return plpy.quote_ident(name)


# --- the query's embedding -----------------------------------------------------------------

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
    cached = plpy.execute(_prepared("SELECT ai._query_cache_get($1)::text AS e", ["text"]), [key])[0]["e"]
    if cached is not None:
        return "[" + cached[1:-1] + "]"  # real[] text {…} → vector text […], same float4 values
    vector = embedding.embed_request(emb, [text], vectorizer_name)[0]
    row = plpy.execute(_prepared("SELECT ai._query_cache_put($1, $2)::text AS e", ["text", "real[]"]),
                       [key, vector])[0]
    return "[" + row["e"][1:-1] + "]"


def vectorizer_query_embedding(vectorizer_id: int, text: str) -> str:
    """The embedding of a search query for one vectorizer (cached)."""
    name, config = vectorizer_config(vectorizer_id)
    return query_embedding(config["embedding"], text, name)


# --- the search statement ------------------------------------------------------------------

def _target(row_type: int) -> dict:
    """The vectorizer whose view has this row type (or ai._search_vectorizer's error)."""
    _lock_view(row_type)
    rows = plpy.execute(_prepared("""
        SELECT z.id, z.name, z.config, z.view_schema, z.view_name, z.target_schema, z.target_table,
               c.oid AS view_oid
        FROM ai.vectorizer z
        JOIN pg_catalog.pg_namespace n ON n.nspname = z.view_schema
        JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = z.view_name
        WHERE c.reltype = $1""", ["oid"]), [row_type])
    if not rows:
        plpy.execute(_prepared("SELECT ai._search_vectorizer($1)", ["oid"]), [row_type])
    return rows[0]


def _lock_view(row_type: int) -> None:
    """Lock the view before the catalog is read, as a new generation's swap does (38_alter.sql):
    a swap either finished before (the catalog and the view both show the new generation) or
    waits for this search. Without the right to, nothing is locked (the search says why)."""
    view = plpy.execute(_prepared("""
        SELECT c.oid::pg_catalog.regclass::pg_catalog.text AS rel FROM pg_catalog.pg_class c
        WHERE c.reltype = $1 AND c.relkind = 'v'""", ["oid"]), [row_type])
    if view:
        try:
            with plpy.subtransaction():
                plpy.execute(f"LOCK TABLE {view[0]['rel']} IN ACCESS SHARE MODE")
        except plpy.SPIError:
            pass


def _vector_schema() -> str:
    """Schema of the vector extension (operators are schema-qualified: callers' paths vary)."""
    return plpy.execute(_prepared("""SELECT n.nspname FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'""", []))[0]["nspname"]


def _literal_text(value: Any) -> str:
    """A JSON scalar as the text PostgreSQL reads it from (true, 42, 1.5, abc)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def predicate(view_oid: int, view_name: str, filter_json: str | None, where_clause: str | None) -> str:
    """The WHERE clause over the view (alias v).

    filter: {"column": value} is column = value, a JSON array is IN (...), null is IS NULL;
    values are quoted literals cast to the column's type, safe for untrusted input.
    where_clause: any SQL condition on the view's columns, run with the caller's rights.
    """
    parts = ["true"]
    wanted = json.loads(filter_json) if filter_json is not None else {}
    if not isinstance(wanted, dict):
        fail(f"filter must be a JSON object, got {type(wanted).__name__}", sqlstate="22023",
             hint="""e.g. filter => '{"category": "news", "lang": ["en", "de"]}'""")
    if wanted:
        columns = {r["attname"]: r for r in plpy.execute(_prepared("""
            SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS typ, t.typname, t.typcategory
            FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""", ["oid"]),
            [view_oid])}
    for name, value in wanted.items():
        col = columns.get(name)
        if col is None:
            fail(f'filter names column "{name}", which {view_name} does not have', sqlstate="42703",
                 hint="columns: " + ", ".join(_q(c) for c in columns))
        if col["typcategory"] == "A" or col["typname"] in ("json", "jsonb", "vector") or isinstance(value, dict):
            fail(f'filter compares scalar columns with values; cannot compare column "{name}" ({col["typ"]}) '
                 f"with {json.dumps(value)}", sqlstate="22023", hint="write that condition in where_clause => '...'")
        column = "v." + _q(name)
        if value is None:
            parts.append(f"{column} IS NULL")
        elif isinstance(value, list):
            items = ", ".join("NULL" if x is None else plpy.quote_literal(_literal_text(x)) for x in value)
            parts.append(f"{column} = ANY (ARRAY[{items}]::{col['typ']}[])")
        else:
            parts.append(f"{column} = {plpy.quote_literal(_literal_text(value))}::{col['typ']}")
    if where_clause and where_clause.strip():
        parts.append(f"({where_clause})")
    return " AND ".join(parts)


# Semantic: the k nearest chunks, found by key and distance only; whole rows are built for
# those k alone (a sort would otherwise carry every row's text and embedding). relaxed_order
# (iterative scans) may return rows slightly out of order: materialize, then sort.
# ROW(v.*), not v: a source column named v would win over the whole-row reference.
_SEMANTIC = """
    WITH top AS MATERIALIZED (
        SELECT v.embedding_uuid AS id, v.embedding {op} $1::{vector} AS distance
        FROM {view} v WHERE {where}
        ORDER BY distance LIMIT $2)
    SELECT (pg_catalog.row_number() OVER (ORDER BY t.distance, t.id))::int, t.distance, ROW(v.*)::{view}
    FROM top t JOIN {view} v ON v.embedding_uuid = t.id
    ORDER BY t.distance, t.id"""

# Hybrid: the vector branch's and the text branch's top candidates ($4 each), fused by
# reciprocal rank fusion. The text branch ranks chunks by the summed inverse document frequency
# (BM25's idf) of the query words they contain, counted over the rows the caller can see, the
# shorter chunk first on a tie (BM25's length normalization, roughly); each word's matches come
# from the GIN index, so no chunk's tsvector is recomputed for ranking.
_HYBRID = """
    WITH vec AS MATERIALIZED (
        SELECT v.embedding_uuid AS id, v.embedding {op} $1::{vector} AS d
        FROM {view} v WHERE {where}
        ORDER BY d LIMIT $4),
    terms AS MATERIALIZED (
        SELECT t.i, ('''' || pg_catalog.replace(pg_catalog.replace(t.l, '\\', '\\\\'), '''', '''''')
                     || '''')::pg_catalog.tsquery AS q
        FROM pg_catalog.unnest($3::text[]) WITH ORDINALITY AS t(l, i)),
    matches AS MATERIALIZED (
        SELECT t.i, m.id, m.len FROM terms t
        CROSS JOIN LATERAL (SELECT v.embedding_uuid AS id, pg_catalog.length(v.chunk) AS len FROM {view} v
                            WHERE {tsvector} OPERATOR(pg_catalog.@@) t.q AND {where}) m),
    idf AS (
        SELECT c.i, pg_catalog.ln(1 + (greatest(s.reltuples, c.n) - c.n + 0.5) / (c.n + 0.5)) AS w
        FROM (SELECT i, count(*)::float8 AS n FROM matches GROUP BY i) c,
             pg_catalog.pg_class s WHERE s.oid = {store}::pg_catalog.regclass),
    txt AS (
        SELECT m.id, sum(idf.w) AS r, min(m.len) AS len FROM matches m JOIN idf ON idf.i = m.i
        GROUP BY m.id ORDER BY r DESC, len, m.id LIMIT $4),
    fused AS (
        SELECT coalesce(a.id, b.id) AS id, a.n AS vector_rank, b.n AS text_rank,
               coalesce($5 / ($7 + a.n), 0) + coalesce($6 / ($7 + b.n), 0) AS score
        FROM (SELECT id, pg_catalog.row_number() OVER (ORDER BY d, id) AS n FROM vec) a
        FULL JOIN (SELECT id, pg_catalog.row_number() OVER (ORDER BY r DESC, len, id) AS n FROM txt) b ON a.id = b.id
        ORDER BY score DESC, a.n NULLS LAST, b.n NULLS LAST LIMIT $2)
    SELECT (pg_catalog.row_number() OVER (ORDER BY f.score DESC, f.vector_rank NULLS LAST,
                                                   f.text_rank NULLS LAST))::int,
           f.score, f.vector_rank::int, f.text_rank::int, v.embedding {op} $1::{vector}, ROW(v.*)::{view}
    FROM fused f JOIN {view} v ON v.embedding_uuid = f.id
    ORDER BY 1"""


def search_statement(row_type: int, query: str, filter_json: str | None, where_clause: str | None,
                     language: int | None) -> dict:
    """The statement a search function runs, and its first parameters.

    Semantic ($1 query vector, $2 k); hybrid when ``language`` (a regconfig oid) is given
    ($3 the query's lexemes, $4 candidates, $5 vector_weight, $6 text_weight, $7 rrf_k).
    """
    target = _target(row_type)
    config = json.loads(target["config"])
    view = f"{_q(target['view_schema'])}.{_q(target['view_name'])}"
    vector_schema = _q(_vector_schema())
    opclass = (config.get("indexing") or {}).get("opclass", "vector_cosine_ops")
    parts = {"view": view, "vector": f"{vector_schema}.vector",
             "op": f"OPERATOR({vector_schema}.{_OPERATORS.get(opclass, '<=>')})",
             "where": predicate(target["view_oid"], view, filter_json, where_clause)}
    out = {"vectorizer_id": target["id"],
           "query_vector": query_embedding(config["embedding"], query, target["name"]),
           "lexemes": None}
    if language is None:
        out["statement"] = _SEMANTIC.format(**parts)
        return out
    row = plpy.execute(_prepared("""
        SELECT $1::pg_catalog.regconfig::text AS name,
               pg_catalog.tsvector_to_array(pg_catalog.to_tsvector($1::pg_catalog.regconfig, $2)) AS lexemes""",
        ["oid", "text"]), [language, query])[0]
    store = f"{_q(target['target_schema'])}.{_q(target['target_table'])}"
    out["lexemes"] = row["lexemes"]
    out["statement"] = _HYBRID.format(
        **parts, store=plpy.quote_literal(store),
        tsvector=f"pg_catalog.to_tsvector({plpy.quote_literal(row['name'])}::pg_catalog.regconfig, v.chunk)")
    return out


# --- RAG -----------------------------------------------------------------------------------

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
    if implementation == emb.get("implementation"):  # same provider: same host and key
        base_url = base_url or emb.get("base_url")
        api_key_name = api_key_name or emb.get("api_key_name")
    messages = [{"role": "system", "content": system_prompt or DEFAULT_SYSTEM_PROMPT},
                {"role": "user", "content": prompt}]
    if implementation == "ollama":
        response = ollama.chat(model, messages, base_url, None, options)
        return (response.get("message") or {}).get("content")
    if implementation == "openai":
        params = ollama.json_arg(options, "options", dict) or {}
        response = openai.chat_complete(model, messages, None, api_key_name, base_url, **params)
        choices = response.get("choices") or [{}]
        return (choices[0].get("message") or {}).get("content")
    fail(f"unknown chat implementation {implementation!r}", sqlstate="22023",
         hint="pass implementation => 'ollama' or 'openai'")
