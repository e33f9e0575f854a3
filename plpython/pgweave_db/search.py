"""Search: the WHERE clause a search's filter and where_clause make.

The search statements, and everything else they need (the vectorizer's view, store and
distance operator, the query embedding's cache key, the query's lexemes), are SQL, in
sql/functions/50_search.sql. This module builds only the predicate of a filter, because it
quotes untrusted values: identifiers and values are quoted here and only here. The statements
run as the caller, over the vectorizer's view (security_invoker), so grants and row-level
security of the source apply before ranking.

Errors are raised with ``errors.fail`` (SQLSTATE, hint, detail) like everywhere else; the
entry points made by ai._python_entry_point show them without PL/Python's ``plpy.Error:``.
"""

from __future__ import annotations

import json
from typing import Any

import plpy

from .errors import fail
from .query_cache import prepared

_FILTER_HINT = """e.g. filter => '{"category": "news", "lang": ["en", "de"]}'"""


def _q(name: str) -> str:
    """An identifier, quoted."""
    return plpy.quote_ident(name)


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


def predicate(view_oid: int, filter_json: str | None, where_clause: str | None) -> str:
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
            view_name = plpy.execute(prepared("SELECT $1::pg_catalog.regclass::text AS v", ["oid"]),
                                     [view_oid])[0]["v"]
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
