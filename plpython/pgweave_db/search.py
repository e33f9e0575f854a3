"""Search: the parts of a search statement that depend on the vectorizer and the caller's filter.

The statements themselves are SQL, in sql/functions/50_search.sql (ai._search_sql), next to
the parameters each search function passes them. This module supplies only what must be
looked up or quoted: the vectorizer's view, store and distance operator, the WHERE clause built
from a filter (identifiers and values are quoted here and only here), the query's embedding
(query_cache) and the query's lexemes. The statements run as the caller, over the vectorizer's
view (security_invoker), so grants and row-level security of the source apply before ranking.

Errors are raised with ``errors.fail`` (SQLSTATE, hint, detail) like everywhere else; the
entry points made by ai._python_entry_point show them without PL/Python's ``plpy.Error:``.
"""

from __future__ import annotations

import json
from typing import Any

import plpy

from .errors import fail
from .query_cache import prepared, query_embedding

_OPERATORS = {"vector_l2_ops": "<->", "vector_ip_ops": "<#>", "vector_l1_ops": "<+>"}
_FILTER_HINT = """e.g. filter => '{"category": "news", "lang": ["en", "de"]}'"""


def _q(name: str) -> str:
    """An identifier, quoted."""
    return plpy.quote_ident(name)


def _target(row_type: int) -> dict:
    """The vectorizer whose view has this row type (or ai._search_vectorizer's error)."""
    _lock_view(row_type)
    rows = plpy.execute(prepared("""
        SELECT z.id, z.name, z.config, z.view_schema, z.view_name, z.target_schema, z.target_table,
               c.oid AS view_oid
        FROM ai.vectorizer z
        JOIN pg_catalog.pg_namespace n ON n.nspname = z.view_schema
        JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = z.view_name
        WHERE c.reltype = $1""", ["oid"]), [row_type])
    if not rows:
        plpy.execute(prepared("SELECT ai._search_vectorizer($1)", ["oid"]), [row_type])
    return rows[0]


def _lock_view(row_type: int) -> None:
    """Lock the view before the catalog is read, as a new generation's swap does (38_alter.sql):
    a swap either finished before (the catalog and the view both show the new generation) or
    waits for this search. Without the right to, nothing is locked (the search says why)."""
    view = plpy.execute(prepared("""
        SELECT c.oid::pg_catalog.regclass::pg_catalog.text AS rel FROM pg_catalog.pg_class c
        WHERE c.reltype = $1 AND c.relkind = 'v'""", ["oid"]), [row_type])
    if view:
        try:
            with plpy.subtransaction():
                plpy.execute(prepared(f"LOCK TABLE {view[0]['rel']} IN ACCESS SHARE MODE", []))
        except plpy.SPIError:
            pass


def _vector_schema() -> str:
    """Schema of the vector extension (operators are schema-qualified: callers' paths vary)."""
    return plpy.execute(prepared("""SELECT n.nspname FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'""", []))[0]["nspname"]


def _literal_text(value: Any) -> str:
    """A JSON scalar as the text PostgreSQL reads it from (true, 42, 1.5, abc)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _filter_object(filter_json: str | None) -> dict:
    """The filter as a dict of column → scalar or list of scalars (or a clear error)."""
    try:
        wanted = json.loads(filter_json) if filter_json is not None else {}
    except RecursionError:
        fail("filter is nested too deeply: it compares columns with scalars or lists of scalars",
             sqlstate="22023", hint=_FILTER_HINT + "; write other conditions in where_clause => '...'")
    if not isinstance(wanted, dict):
        fail(f"filter must be a JSON object, got {type(wanted).__name__}", sqlstate="22023", hint=_FILTER_HINT)
    return wanted


def predicate(view_oid: int, view_name: str, filter_json: str | None, where_clause: str | None) -> str:
    """The WHERE clause over the view (alias v).

    filter: {"column": value} is column = value, a JSON array is IN (...), null is IS NULL;
    values are quoted literals cast to the column's type, safe for untrusted input.
    where_clause: any SQL condition on the view's columns, run with the caller's rights.
    """
    parts = ["true"]
    wanted = _filter_object(filter_json)
    if wanted:
        columns = {r["attname"]: r for r in plpy.execute(prepared("""
            SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) AS typ, t.typname, t.typcategory
            FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""", ["oid"]),
            [view_oid])}
    for name, value in wanted.items():
        col = columns.get(name)
        if col is None:
            fail(f'filter names column "{name}", which {view_name} does not have', sqlstate="42703",
                 hint="columns: " + ", ".join(_q(c) for c in columns))
        nested = isinstance(value, list) and any(isinstance(x, (list, dict)) for x in value)
        if col["typcategory"] == "A" or col["typname"] in ("json", "jsonb", "vector") or isinstance(value, dict) \
                or nested:
            shown = json.dumps(value) if not nested else "a list of lists or objects"
            fail(f'filter compares scalar columns with values; cannot compare column "{name}" ({col["typ"]}) '
                 f"with {shown}", sqlstate="22023", hint="write that condition in where_clause => '...'")
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


def search_parts(row_type: int, query: str, filter_json: str | None, where_clause: str | None,
                 language: int | None, embed: bool) -> dict:
    """What ai._search_sql needs to write a search statement over this vectorizer's view, and
    the query's embedding (when ``embed``) and lexemes (when ``language``, a regconfig oid, is given)."""
    target = _target(row_type)
    config = json.loads(target["config"])
    view = f"{_q(target['view_schema'])}.{_q(target['view_name'])}"
    vector_schema = _q(_vector_schema())
    opclass = (config.get("indexing") or {}).get("opclass", "vector_cosine_ops")
    out = {"vectorizer_id": target["id"], "view": view, "vector_type": f"{vector_schema}.vector",
           "distance_op": f"OPERATOR({vector_schema}.{_OPERATORS.get(opclass, '<=>')})",
           "predicate": predicate(target["view_oid"], view, filter_json, where_clause),
           "store": f"{_q(target['target_schema'])}.{_q(target['target_table'])}",
           "query_vector": query_embedding(config["embedding"], query, target["name"]) if embed else None,
           "lexemes": None, "tsvector": None}
    if language is not None:
        row = plpy.execute(prepared("""
            SELECT $1::pg_catalog.regconfig::text AS name,
                   pg_catalog.tsvector_to_array(pg_catalog.to_tsvector($1::pg_catalog.regconfig, $2)) AS lexemes""",
            ["oid", "text"]), [language, query])[0]
        out["lexemes"] = row["lexemes"]
        out["tsvector"] = f"pg_catalog.to_tsvector({plpy.quote_literal(row['name'])}::pg_catalog.regconfig, v.chunk)"
    return out
