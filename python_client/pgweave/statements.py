"""The SQL of every client operation: statements built with psycopg.sql, and ``ai.<f>(...)`` calls.

Each client method (sync or async, :mod:`pgweave.client`) runs one or two of these
:class:`Statement` objects; the alembic operations (:mod:`pgweave.alembic`) render the same ones
as literal SQL. Nothing here touches a connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .results import RagAnswer, SearchResult, Vectorizer, VectorizerError, VectorizerStatus, from_row

__all__ = ["SqlCall", "ai", "ConfigValue", "Statement", "Statements"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _literal(value: Any) -> sql.Composable:
    """A Python value as an SQL literal: dicts become jsonb, calls stay calls."""
    if isinstance(value, SqlCall):
        return value.as_sql()
    if isinstance(value, Mapping):
        return sql.Literal(Jsonb(dict(value)))
    if isinstance(value, tuple):
        value = list(value)
    return sql.Literal(value)


@dataclass(frozen=True)
class SqlCall:
    """A call of a function of the ``ai`` schema, e.g. ``ai.embedding_ollama('all-minilm', 384)``.

    Made with the :data:`ai` namespace, passed wherever the SQL API takes a configuration, and
    rendered as the same SQL a user would write: the SQL function builds the value, so the
    client never duplicates what it does.
    """

    function: str
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def as_sql(self) -> sql.Composed:
        """The call as SQL with literal arguments: ``"ai"."f"('a', n => 1)``."""
        parts = [_literal(a) for a in self.args]
        parts += [sql.SQL("{} => {}").format(sql.Identifier(k), _literal(v)) for k, v in self.kwargs]
        return sql.SQL("{}.{}({})").format(sql.Identifier("ai"), sql.Identifier(self.function),
                                           sql.SQL(", ").join(parts))

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"ai.{self.function}({', '.join(parts)})"


class _Ai:
    """``ai.<function>(...)`` in Python builds an :class:`SqlCall` of ``ai.<function>(...)``."""

    def __getattr__(self, function: str) -> Callable[..., SqlCall]:
        """A builder of calls of ai.<function> (ai.embedding_ollama, ...)."""
        if not _IDENT.match(function) or function.startswith("_"):
            raise AttributeError(function)

        def call(*args: Any, **kwargs: Any) -> SqlCall:
            """The SqlCall of this function with these arguments."""
            return SqlCall(function, tuple(args), tuple(kwargs.items()))

        call.__name__ = function
        return call

    def __repr__(self) -> str:
        return "ai"


ai = _Ai()

ConfigValue = Union[SqlCall, Mapping[str, Any]]


@dataclass(frozen=True)
class Statement:
    """One SQL statement and how to turn its rows into the method's result."""

    query: sql.Composable
    params: Sequence[Any] = ()
    result: Callable[[list[Any]], Any] = lambda rows: None
    row_factory: Callable = dict_row


def scalar(rows: list[dict]) -> Any:
    """The first column of the first row (None without rows)."""
    return next(iter(rows[0].values())) if rows else None


def _for_vectorizer(name: str, select: str, params: Sequence[Any] = ()) -> sql.Composed:
    """``select`` (over the id ``q.id``) for a named vectorizer, or ai._vectorizer_id's error.

    The id is computed in a subquery that the outer LEFT JOIN must produce (OFFSET 0 keeps the
    planner from folding it away), so an unknown name raises the function's error (42704 with
    the existing names in its hint) even when the joined rows would be empty.
    """
    return sql.SQL("SELECT r.* FROM (SELECT ai._vectorizer_id({}) AS id OFFSET 0) q "
                   "LEFT JOIN LATERAL (" + select + ") r ON true").format(sql.Literal(name), *params)


class Statements:
    """The SQL of every client operation (shared by Client and AsyncClient)."""

    @staticmethod
    def version() -> Statement:
        """SELECT ai.pgweave_version()."""
        return Statement(sql.SQL("SELECT ai.pgweave_version()"), result=scalar)

    @staticmethod
    def vectorizers() -> Statement:
        """Every vectorizer's catalog row, by name."""
        return Statement(sql.SQL("SELECT * FROM ai.vectorizer ORDER BY name"),
                         result=lambda rows: [from_row(Vectorizer, r) for r in rows])

    @staticmethod
    def vectorizer(name: str) -> Statement:
        """One vectorizer's catalog row (ai._vectorizer_id's error when unknown)."""
        return Statement(_for_vectorizer(name, "SELECT * FROM ai.vectorizer v WHERE v.id = q.id"),
                         result=lambda rows: from_row(Vectorizer, rows[0]))

    @staticmethod
    def status(name: str | None) -> Statement:
        """ai.vectorizer_status: every row, or the named vectorizer's."""
        if name is None:
            return Statement(sql.SQL("SELECT * FROM ai.vectorizer_status ORDER BY name"),
                             result=lambda rows: [from_row(VectorizerStatus, r) for r in rows])
        return Statement(
            _for_vectorizer(name, "SELECT * FROM ai.vectorizer_status s WHERE s.id = q.id"),
            result=lambda rows: from_row(VectorizerStatus, rows[0]))

    @staticmethod
    def errors(name: str | None, limit: int | None) -> Statement:
        """ai.vectorizer_errors, newest first, of all or of one vectorizer."""
        limit_sql = sql.SQL("LIMIT {}").format(sql.Literal(limit)) if limit else sql.SQL("")
        order = "ORDER BY e.recorded DESC, e.error_id DESC {}"
        if name is None:
            query = sql.SQL("SELECT * FROM ai.vectorizer_errors e " + order).format(limit_sql)
        else:
            query = _for_vectorizer(
                name, "SELECT * FROM ai.vectorizer_errors e WHERE e.vectorizer_id = q.id " + order,
                (limit_sql,))
        return Statement(query, result=lambda rows: [from_row(VectorizerError, r)
                                                      for r in rows if r["id"] is not None])

    @staticmethod
    def call(function: str, *args: Any, **kwargs: Any) -> Statement:
        """SELECT ai.<function>(...) with the non-None keyword arguments; its value is the result."""
        call = SqlCall(function, args, tuple((k, v) for k, v in kwargs.items() if v is not None))
        return Statement(sql.SQL("SELECT {}").format(call.as_sql()), result=scalar)

    @staticmethod
    def create_vectorizer(source: str, kwargs: dict[str, Any]) -> Statement:
        # The cast makes a name like 'blog' or 'app."Blog"' resolve as a relation, as in SQL.
        """SELECT ai.create_vectorizer(source::regclass, name => value, ...)."""
        args = [sql.SQL("{}::regclass").format(sql.Literal(source))]
        args += [sql.SQL("{} => {}").format(sql.Identifier(k), _literal(v))
                 for k, v in kwargs.items() if v is not None]
        return Statement(sql.SQL("SELECT ai.create_vectorizer({})").format(sql.SQL(", ").join(args)),
                         result=scalar)

    @staticmethod
    def execute_vectorizer(name: str, max_batches: int | None) -> Statement:
        """CALL ai.execute_vectorizer(name, max_batches => n)."""
        return Statement(sql.SQL("CALL ai.execute_vectorizer({}, max_batches => {})").format(
            sql.Literal(name), sql.Literal(max_batches)))
    @staticmethod
    def semantic_search(v: Vectorizer, query: str, k: int | None, filter: Mapping | None,
                        where_clause: str | None) -> Statement:
        """ai.semantic_search over the vectorizer's view."""
        return _search_statement("semantic_search", ("rank", "distance"), v, [query],
                                 dict(k=k, filter=filter, where_clause=where_clause))

    @staticmethod
    def hybrid_search(v: Vectorizer, query: str, options: dict[str, Any]) -> Statement:
        """ai.hybrid_search over the vectorizer's view."""
        return _search_statement("hybrid_search", ("rank", "score", "vector_rank", "text_rank", "distance"),
                                 v, [query], options)

    @staticmethod
    def rag(v: Vectorizer, question: str, model: str, options: dict[str, Any]) -> Statement:
        """ai.rag over the vectorizer's view: answer, sources, prompt."""
        args, params = _arguments([question, model], options)
        query = sql.SQL("SELECT r.answer, r.sources, r.prompt FROM ai.rag(NULL::{}, {}) r").format(
            sql.Identifier(v.view_schema, v.view_name), args)
        return Statement(query, params, result=lambda rows: from_row(RagAnswer, rows[0]))


def _arguments(positional: list[Any], named: Mapping[str, Any]) -> tuple[sql.Composed, list[Any]]:
    """Placeholders for positional values, then ``name => %s`` for the named ones not None."""
    parts = [sql.Placeholder() for _ in positional]
    params = list(positional)
    for name, value in named.items():
        if value is not None:
            parts.append(sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder()))
            params.append(Jsonb(dict(value)) if isinstance(value, Mapping) else value)
    return sql.SQL(", ").join(parts), params


def _search_statement(function: str, leading: tuple[str, ...], v: Vectorizer, positional: list[Any],
                      named: Mapping[str, Any]) -> Statement:
    """SELECT the search's own columns, then the hit's columns, from ai.<function>(NULL::view, ...).

    The view's row type goes into the statement as a typed NULL (the SQL API's way of naming
    the vectorizer and typing its results); rows come back as (name, value) pairs so that a
    source column called ``rank`` or ``distance`` cannot shadow the search's own columns.
    """
    args, params = _arguments(positional, named)
    query = sql.SQL("SELECT {}, (s.hit).* FROM ai.{}(NULL::{}, {}) s").format(
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in leading),
        sql.Identifier(function), sql.Identifier(v.view_schema, v.view_name), args)
    key_columns = [k["attname"] for k in sorted(v.source_pk or [], key=lambda k: k["pknum"])]

    def results(rows: list[list[tuple[str, Any]]]) -> list[SearchResult]:
        """SearchResults from (name, value) rows: the search's own columns, then the hit's."""
        out = []
        for pairs in rows:
            own = {name: value for name, value in pairs[:len(leading)]}
            row = dict(pairs[len(leading):])
            out.append(SearchResult(row=row, key={c: row.get(c) for c in key_columns}, **own))
        return out

    return Statement(query, params, result=results, row_factory=_pairs_row)


def _pairs_row(cursor: Any) -> Callable[[Sequence[Any]], list[tuple[str, Any]]]:
    """A psycopg row factory: each row as a list of (column name, value), duplicates kept."""
    names = [c.name for c in cursor.description or []]
    return lambda values: list(zip(names, values))
