"""The Python client: a thin, typed layer over the SQL API of the ``ai`` schema.

Every method is one SQL statement calling a function or view of the ``ai`` schema (search:
two, the view's name first); what a vectorizer does, how it is validated and how search ranks
all stay in SQL. The client adds types (dataclasses for rows), errors users can catch
(:mod:`pgweave.errors`) and the one loop that SQL cannot do for a caller: waiting until a
vectorizer is in sync.

    from pgweave import Client, ai

    with Client.connect("postgresql://app@db/app") as client:
        client.create_vectorizer("blog", loading=ai.loading_column("contents"),
                                 embedding=ai.embedding_ollama("all-minilm", 384))
        client.wait("blog_embedding", on_progress=print)

:class:`AsyncClient` has the same methods, as coroutines, over psycopg's AsyncConnection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence, overload

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .errors import NotInSync, from_psycopg

__all__ = [
    "Client", "AsyncClient", "SqlCall", "ai", "resolve_dsn", "Vectorizer", "VectorizerStatus",
    "VectorizerError", "SyncProgress", "SearchResult", "RagAnswer",
]


def resolve_dsn(dsn: str | None = None) -> str:
    """--dsn, then PGWEAVE_DSN, then DATABASE_URL, then '' (libpq's own defaults: PGHOST...)."""
    return dsn or os.environ.get("PGWEAVE_DSN") or os.environ.get("DATABASE_URL") or ""


# ---------------------------------------------------------------------------------------------
# Calls of the ai schema's SQL functions, built in Python (the configuration constructors)
# ---------------------------------------------------------------------------------------------

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
        if not _IDENT.match(function) or function.startswith("_"):
            raise AttributeError(function)

        def call(*args: Any, **kwargs: Any) -> SqlCall:
            return SqlCall(function, tuple(args), tuple(kwargs.items()))

        call.__name__ = function
        return call

    def __repr__(self) -> str:
        return "ai"


ai = _Ai()

ConfigValue = SqlCall | Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# Result types: one dataclass per view or result set, fields named as its columns
# ---------------------------------------------------------------------------------------------

def _from_row(cls, row: Mapping[str, Any]):
    """An instance of a result dataclass from a row, ignoring columns it does not know."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Vectorizer:
    """A vectorizer's catalog row (``ai.vectorizer``): where it reads and writes, and how."""

    id: int
    name: str
    source_schema: str
    source_table: str
    target_schema: str
    target_table: str
    view_schema: str
    view_name: str
    queue_schema: str
    queue_table: str
    config: dict = field(default_factory=dict)
    source_pk: list[dict[str, Any]] = field(default_factory=list)
    owner: str | None = None
    created_at: datetime | None = None

    def definition(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Client.create_vectorizer` that recreate this vectorizer."""
        source = sql.Identifier(self.source_schema, self.source_table).as_string(None)
        parts = ("loading", "embedding", "chunking", "formatting", "indexing", "scheduling",
                 "processing")
        config = {k: _strip_runtime(k, self.config[k]) for k in parts if k in self.config}
        return {"source": source, "name": self.name,
                "target_schema": self.target_schema, "target_table": self.target_table,
                "view_schema": self.view_schema, "view_name": self.view_name, **config}


def _strip_runtime(part: str, value: Any) -> Any:
    """A config part without what create_vectorizer adds at run time (the pg_cron job id)."""
    if part == "scheduling" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "job_id"}
    return value


@dataclass(frozen=True)
class VectorizerStatus:
    """One row of ``ai.vectorizer_status``."""

    id: int
    name: str
    source_table: str | None = None
    view: str | None = None
    target_table: str | None = None
    pending_items: int | None = None
    failed_items: int | None = None
    stored_chunks: int | None = None
    items_processed: int | None = None
    chunks_embedded: int | None = None
    chunks_reused: int | None = None
    model_calls: int | None = None
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    embedding_model: str | None = None
    schedule: str | None = None

    @property
    def in_sync(self) -> bool:
        """Nothing waits in the queue (parked failed items are not waiting: see failed_items)."""
        return not self.pending_items


@dataclass(frozen=True)
class VectorizerError:
    """One row of ``ai.vectorizer_errors``."""

    id: int
    vectorizer_id: int
    name: str | None
    recorded: datetime
    message: str
    details: dict | None = None


@dataclass(frozen=True)
class SyncProgress:
    """How far a wait has come: ``done`` items since it began, of ``total`` = done + pending."""

    status: VectorizerStatus
    done: int
    total: int
    elapsed: float

    @property
    def in_sync(self) -> bool:
        return self.status.in_sync

    @classmethod
    def between(cls, first: VectorizerStatus, now: VectorizerStatus, elapsed: float) -> "SyncProgress":
        """Progress from a first look to now: items processed since, of those plus what waits."""
        done = max(0, (now.items_processed or 0) - (first.items_processed or 0))
        return cls(now, done, done + (now.pending_items or 0), elapsed)


def _not_in_sync(status: VectorizerStatus, timeout: float) -> NotInSync:
    return NotInSync(f"vectorizer {status.name!r} still has {status.pending_items} pending item(s) "
                     f"after {timeout:g} s", status)


@dataclass(frozen=True)
class SearchResult:
    """One hit of ``ai.semantic_search`` or ``ai.hybrid_search``, best first.

    ``row`` is the vectorizer view's row (the source's columns, ``chunk``, ``chunk_seq``,
    ``embedding_uuid``, ``embedding``) with its columns' own types; ``key`` is the source
    row's primary key. Hybrid search also fills ``score`` (reciprocal rank fusion),
    ``vector_rank`` and ``text_rank`` (None where that side did not find the chunk).
    """

    rank: int
    distance: float | None
    row: dict[str, Any]
    key: dict[str, Any]
    score: float | None = None
    vector_rank: int | None = None
    text_rank: int | None = None

    @property
    def chunk(self) -> str:
        return self.row.get("chunk")


@dataclass(frozen=True)
class RagAnswer:
    """``ai.rag``'s result: the model's answer, the numbered sources it was given, the prompt."""

    answer: str
    sources: list[dict[str, Any]]
    prompt: str


# ---------------------------------------------------------------------------------------------
# Statements: each client method is one of these, run by the sync or the async client
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Statement:
    """One SQL statement and how to turn its rows into the method's result."""

    query: sql.Composable
    params: Sequence[Any] = ()
    result: Callable[[list[Any]], Any] = lambda rows: None
    row_factory: Callable = dict_row


def _scalar(rows: list[dict]) -> Any:
    return next(iter(rows[0].values())) if rows else None


def _for_vectorizer(name: str, select: str, params: Sequence[Any] = ()) -> sql.Composed:
    """``select`` (over the id ``q.id``) for a named vectorizer, or ai._vectorizer_id's error.

    The id is computed in a subquery that the outer LEFT JOIN must produce (OFFSET 0 keeps the
    planner from folding it away), so an unknown name raises the function's error (42704 with
    the existing names in its hint) even when the joined rows would be empty.
    """
    return sql.SQL("SELECT r.* FROM (SELECT ai._vectorizer_id({}) AS id OFFSET 0) q "
                   "LEFT JOIN LATERAL (" + select + ") r ON true").format(sql.Literal(name), *params)


class _Statements:
    """The SQL of every client operation (shared by Client and AsyncClient)."""

    @staticmethod
    def version() -> _Statement:
        return _Statement(sql.SQL("SELECT ai.pgweave_version()"), result=_scalar)

    @staticmethod
    def vectorizers() -> _Statement:
        return _Statement(sql.SQL("SELECT * FROM ai.vectorizer ORDER BY name"),
                          result=lambda rows: [_from_row(Vectorizer, r) for r in rows])

    @staticmethod
    def vectorizer(name: str) -> _Statement:
        return _Statement(_for_vectorizer(name, "SELECT * FROM ai.vectorizer v WHERE v.id = q.id"),
                          result=lambda rows: _from_row(Vectorizer, rows[0]))

    @staticmethod
    def status(name: str | None) -> _Statement:
        if name is None:
            return _Statement(sql.SQL("SELECT * FROM ai.vectorizer_status ORDER BY name"),
                              result=lambda rows: [_from_row(VectorizerStatus, r) for r in rows])
        return _Statement(
            _for_vectorizer(name, "SELECT * FROM ai.vectorizer_status s WHERE s.id = q.id"),
            result=lambda rows: _from_row(VectorizerStatus, rows[0]))

    @staticmethod
    def errors(name: str | None, limit: int | None) -> _Statement:
        limit_sql = sql.SQL("LIMIT {}").format(sql.Literal(limit)) if limit else sql.SQL("")
        order = "ORDER BY e.recorded DESC, e.id DESC {}"
        if name is None:
            query = sql.SQL("SELECT * FROM ai.vectorizer_errors e " + order).format(limit_sql)
        else:
            query = _for_vectorizer(
                name, "SELECT * FROM ai.vectorizer_errors e WHERE e.vectorizer_id = q.id " + order,
                (limit_sql,))
        return _Statement(query, result=lambda rows: [_from_row(VectorizerError, r)
                                                      for r in rows if r["id"] is not None])

    @staticmethod
    def call(function: str, *args: Any, **kwargs: Any) -> _Statement:
        """SELECT ai.<function>(...) with the non-None keyword arguments; its value is the result."""
        call = SqlCall(function, args, tuple((k, v) for k, v in kwargs.items() if v is not None))
        return _Statement(sql.SQL("SELECT {}").format(call.as_sql()), result=_scalar)

    @staticmethod
    def create_vectorizer(source: str, kwargs: dict[str, Any]) -> _Statement:
        # The cast makes a name like 'blog' or 'app."Blog"' resolve as a relation, as in SQL.
        args = [sql.SQL("{}::regclass").format(sql.Literal(source))]
        args += [sql.SQL("{} => {}").format(sql.Identifier(k), _literal(v))
                 for k, v in kwargs.items() if v is not None]
        return _Statement(sql.SQL("SELECT ai.create_vectorizer({})").format(sql.SQL(", ").join(args)),
                          result=_scalar)

    @staticmethod
    def execute_vectorizer(name: str, max_batches: int | None) -> _Statement:
        return _Statement(sql.SQL("CALL ai.execute_vectorizer({}, max_batches => {})").format(
            sql.Literal(name), sql.Literal(max_batches)))


    @staticmethod
    def semantic_search(v: Vectorizer, query: str, k: int | None, filter: Mapping | None,
                        where_clause: str | None) -> _Statement:
        return _search_statement("semantic_search", ("rank", "distance"), v, [query],
                                 dict(k=k, filter=filter, where_clause=where_clause))

    @staticmethod
    def hybrid_search(v: Vectorizer, query: str, options: dict[str, Any]) -> _Statement:
        return _search_statement("hybrid_search", ("rank", "score", "vector_rank", "text_rank", "distance"),
                                 v, [query], options)

    @staticmethod
    def rag(v: Vectorizer, question: str, model: str, options: dict[str, Any]) -> _Statement:
        args, params = _arguments([question, model], options)
        query = sql.SQL("SELECT r.answer, r.sources, r.prompt FROM ai.rag(NULL::{}, {}) r").format(
            sql.Identifier(v.view_schema, v.view_name), args)
        return _Statement(query, params, result=lambda rows: _from_row(RagAnswer, rows[0]))


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
                      named: Mapping[str, Any]) -> _Statement:
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
        out = []
        for pairs in rows:
            own = {name: value for name, value in pairs[:len(leading)]}
            row = dict(pairs[len(leading):])
            out.append(SearchResult(row=row, key={c: row.get(c) for c in key_columns}, **own))
        return out

    return _Statement(query, params, result=results, row_factory=_pairs_row)


def _pairs_row(cursor: Any) -> Callable[[Sequence[Any]], list[tuple[str, Any]]]:
    """A psycopg row factory: each row as a list of (column name, value), duplicates kept."""
    names = [c.name for c in cursor.description or []]
    return lambda values: list(zip(names, values))


_S = _Statements


def _create_kwargs(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def _conninfo_of(conn: psycopg.Connection | psycopg.AsyncConnection) -> str:
    """A DSN for another connection to the same database as ``conn`` (for the installer)."""
    return psycopg.conninfo.make_conninfo(conn.info.dsn, password=conn.info.password or None)


# ---------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------

class Client:
    """The pgweave client over a psycopg connection; each method is one SQL call.

    ``Client.connect()`` opens an autocommit connection (so ``execute_vectorizer`` may commit
    per batch); ``Client(conn)`` uses yours, in its transaction mode. Errors are raised as
    :class:`pgweave.errors.PgweaveError` subclasses.
    """

    def __init__(self, connection: psycopg.Connection, *, owns_connection: bool = False):
        self.connection = connection
        self._owns = owns_connection

    @classmethod
    def connect(cls, dsn: str | None = None, **kwargs: Any) -> "Client":
        """Connect to ``dsn`` (default: PGWEAVE_DSN, DATABASE_URL, libpq defaults), autocommit."""
        kwargs.setdefault("autocommit", True)
        try:
            conn = psycopg.connect(resolve_dsn(dsn), **kwargs)
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc
        _register_vector(conn)
        return cls(conn, owns_connection=True)

    def close(self) -> None:
        """Close the connection if this client opened it."""
        if self._owns:
            self.connection.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self, statement: _Statement) -> Any:
        try:
            with self.connection.cursor(row_factory=statement.row_factory) as cur:
                cur.execute(statement.query, statement.params or None)
                rows = cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc
        return statement.result(rows)

    # install ------------------------------------------------------------------------------

    def install(self, revision: str = "head") -> str:
        """Install or upgrade the ``ai`` schema (alembic, on its own connection); its version."""
        from .install import install

        return install(_conninfo_of(self.connection), revision)

    def version(self) -> str:
        """The installed pgweave version (``ai.pgweave_version()``)."""
        return self._run(_S.version())

    # vectorizers --------------------------------------------------------------------------

    def create_vectorizer(
        self, source: str, *, name: str | None = None, destination: str | SqlCall | None = None,
        loading: ConfigValue | None = None, embedding: ConfigValue | None = None,
        chunking: ConfigValue | None = None, formatting: ConfigValue | None = None,
        indexing: ConfigValue | None = None, scheduling: ConfigValue | None = None,
        processing: ConfigValue | None = None, target_schema: str | None = None,
        target_table: str | None = None, view_schema: str | None = None,
        view_name: str | None = None, queue_schema: str | None = None,
        queue_table: str | None = None, grant_to: Sequence[str] | None = None,
        enqueue_existing: bool | None = None, if_not_exists: bool | None = None,
    ) -> int:
        """``ai.create_vectorizer(source, ...)``; arguments left None take the SQL defaults.

        Configurations are ``ai.<constructor>(...)`` calls (see :data:`ai`) or dicts (jsonb,
        e.g. from :meth:`Vectorizer.definition`). Returns the vectorizer id.
        """
        return self._run(_S.create_vectorizer(source, _create_kwargs(
            name=name, destination=destination, loading=loading, embedding=embedding,
            chunking=chunking, formatting=formatting, indexing=indexing, scheduling=scheduling,
            processing=processing, target_schema=target_schema, target_table=target_table,
            view_schema=view_schema, view_name=view_name, queue_schema=queue_schema,
            queue_table=queue_table, grant_to=grant_to, enqueue_existing=enqueue_existing,
            if_not_exists=if_not_exists)))

    def drop_vectorizer(self, name: str, drop_all: bool = False) -> None:
        """``ai.drop_vectorizer``: with drop_all=False the store table and view stay."""
        self._run(_S.call("drop_vectorizer", name, drop_all=drop_all))

    def vectorizers(self) -> list[Vectorizer]:
        """Every vectorizer's catalog row, by name."""
        return self._run(_S.vectorizers())

    def vectorizer(self, name: str) -> Vectorizer:
        """One vectorizer's catalog row (raises VectorizerNotFound)."""
        return self._run(_S.vectorizer(name))

    @overload
    def status(self) -> list[VectorizerStatus]: ...
    @overload
    def status(self, name: str) -> VectorizerStatus: ...

    def status(self, name: str | None = None) -> VectorizerStatus | list[VectorizerStatus]:
        """``ai.vectorizer_status``: a list of every row, or the named vectorizer's row."""
        return self._run(_S.status(name))

    def errors(self, name: str | None = None, limit: int | None = 50) -> list[VectorizerError]:
        """``ai.vectorizer_errors``, newest first (of one vectorizer when named)."""
        return self._run(_S.errors(name, limit))

    def retry_failed(self, name: str) -> int:
        """``ai.retry_failed``: parked items back to the queue, backed-off ones due now; how many
        parked items moved."""
        return self._run(_S.call("retry_failed", name))

    def queue_pending(self, name: str, exact: bool = False) -> int:
        """``ai.vectorizer_queue_pending``: items waiting (estimated beyond 10,000 unless exact)."""
        return self._run(_S.call("vectorizer_queue_pending", name, exact=exact))

    def enable_schedule(self, name: str) -> None:
        """``ai.enable_vectorizer_schedule``."""
        self._run(_S.call("enable_vectorizer_schedule", name))

    def disable_schedule(self, name: str) -> None:
        """``ai.disable_vectorizer_schedule``."""
        self._run(_S.call("disable_vectorizer_schedule", name))

    def execute_vectorizer(self, name: str, max_batches: int | None = None) -> None:
        """``CALL ai.execute_vectorizer``: drain the queue now (needs an autocommit connection)."""
        self._run(_S.execute_vectorizer(name, max_batches))

    def wait(self, name: str, timeout: float | None = None, poll_interval: float = 0.5,
             on_progress: Callable[[SyncProgress], None] | None = None) -> VectorizerStatus:
        """Poll ``ai.vectorizer_status`` until nothing is pending; the final status.

        Something must drain the queue meanwhile (the pg_cron job, ``pgweave worker``, or
        ``execute_vectorizer``). Raises :class:`NotInSync` after ``timeout`` seconds.
        """
        start = time.monotonic()
        first = None
        while True:
            status = self.status(name)
            first = first or status
            elapsed = time.monotonic() - start
            if on_progress:
                on_progress(SyncProgress.between(first, status, elapsed))
            if status.in_sync:
                return status
            if timeout is not None and elapsed >= timeout:
                raise _not_in_sync(status, timeout)
            time.sleep(poll_interval if timeout is None else
                       max(0.0, min(poll_interval, timeout - elapsed)))

    # search ---------------------------------------------------------------------------------
    # Two statements each: the vectorizer's view, then the search, which takes the view's row
    # type written into the SQL (NULL::view), so it cannot be a parameter of one statement.

    def semantic_search(self, vectorizer: str, query: str, k: int = 10, *,
                        filter: Mapping[str, Any] | None = None,
                        where_clause: str | None = None) -> list[SearchResult]:
        """``ai.semantic_search``: the k chunks nearest to ``query``, best first.

        ``filter`` ({"column": value, "column": [any, of], "column": None}) is safe for
        untrusted values; ``where_clause`` is SQL run with your rights: never from user input.
        """
        v = self._run(_S.vectorizer(vectorizer))
        return self._run(_S.semantic_search(v, query, k, filter, where_clause))

    def hybrid_search(self, vectorizer: str, query: str, k: int = 10, *,
                      filter: Mapping[str, Any] | None = None, where_clause: str | None = None,
                      vector_weight: float | None = None, text_weight: float | None = None,
                      rrf_k: int | None = None, language: str | None = None,
                      candidates: int | None = None) -> list[SearchResult]:
        """``ai.hybrid_search``: full-text and vector results fused by reciprocal rank fusion."""
        v = self._run(_S.vectorizer(vectorizer))
        return self._run(_S.hybrid_search(v, query, dict(
            k=k, vector_weight=vector_weight, text_weight=text_weight, rrf_k=rrf_k, filter=filter,
            where_clause=where_clause, language=language, candidates=candidates)))

    def rag(self, vectorizer: str, question: str, model: str, k: int = 5, *,
            filter: Mapping[str, Any] | None = None, where_clause: str | None = None,
            system_prompt: str | None = None, implementation: str | None = None,
            base_url: str | None = None, api_key_name: str | None = None,
            options: Mapping[str, Any] | None = None) -> RagAnswer:
        """``ai.rag``: retrieve the k best chunks, ask ``model``, return answer, sources, prompt."""
        v = self._run(_S.vectorizer(vectorizer))
        return self._run(_S.rag(v, question, model, dict(
            k=k, filter=filter, where_clause=where_clause, system_prompt=system_prompt,
            implementation=implementation, base_url=base_url, api_key_name=api_key_name,
            options=options)))


class AsyncClient:
    """:class:`Client` over psycopg's AsyncConnection: the same methods, as coroutines."""

    def __init__(self, connection: psycopg.AsyncConnection, *, owns_connection: bool = False):
        self.connection = connection
        self._owns = owns_connection

    @classmethod
    async def connect(cls, dsn: str | None = None, **kwargs: Any) -> "AsyncClient":
        """Connect to ``dsn`` (default: PGWEAVE_DSN, DATABASE_URL, libpq defaults), autocommit."""
        kwargs.setdefault("autocommit", True)
        try:
            conn = await psycopg.AsyncConnection.connect(resolve_dsn(dsn), **kwargs)
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc
        await _register_vector_async(conn)
        return cls(conn, owns_connection=True)

    async def close(self) -> None:
        """Close the connection if this client opened it."""
        if self._owns:
            await self.connection.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _run(self, statement: _Statement) -> Any:
        try:
            async with self.connection.cursor(row_factory=statement.row_factory) as cur:
                await cur.execute(statement.query, statement.params or None)
                rows = await cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise from_psycopg(exc) from exc
        return statement.result(rows)

    async def install(self, revision: str = "head") -> str:
        """Install or upgrade the ``ai`` schema (alembic, in a thread); its version."""
        from .install import install

        return await asyncio.to_thread(install, _conninfo_of(self.connection), revision)

    async def version(self) -> str:
        return await self._run(_S.version())

    async def create_vectorizer(
        self, source: str, *, name: str | None = None, destination: str | SqlCall | None = None,
        loading: ConfigValue | None = None, embedding: ConfigValue | None = None,
        chunking: ConfigValue | None = None, formatting: ConfigValue | None = None,
        indexing: ConfigValue | None = None, scheduling: ConfigValue | None = None,
        processing: ConfigValue | None = None, target_schema: str | None = None,
        target_table: str | None = None, view_schema: str | None = None,
        view_name: str | None = None, queue_schema: str | None = None,
        queue_table: str | None = None, grant_to: Sequence[str] | None = None,
        enqueue_existing: bool | None = None, if_not_exists: bool | None = None,
    ) -> int:
        """``ai.create_vectorizer``: see :meth:`Client.create_vectorizer`."""
        return await self._run(_S.create_vectorizer(source, _create_kwargs(
            name=name, destination=destination, loading=loading, embedding=embedding,
            chunking=chunking, formatting=formatting, indexing=indexing, scheduling=scheduling,
            processing=processing, target_schema=target_schema, target_table=target_table,
            view_schema=view_schema, view_name=view_name, queue_schema=queue_schema,
            queue_table=queue_table, grant_to=grant_to, enqueue_existing=enqueue_existing,
            if_not_exists=if_not_exists)))

    async def drop_vectorizer(self, name: str, drop_all: bool = False) -> None:
        await self._run(_S.call("drop_vectorizer", name, drop_all=drop_all))

    async def vectorizers(self) -> list[Vectorizer]:
        return await self._run(_S.vectorizers())

    async def vectorizer(self, name: str) -> Vectorizer:
        return await self._run(_S.vectorizer(name))

    @overload
    async def status(self) -> list[VectorizerStatus]: ...
    @overload
    async def status(self, name: str) -> VectorizerStatus: ...

    async def status(self, name: str | None = None) -> VectorizerStatus | list[VectorizerStatus]:
        return await self._run(_S.status(name))

    async def errors(self, name: str | None = None, limit: int | None = 50) -> list[VectorizerError]:
        return await self._run(_S.errors(name, limit))

    async def retry_failed(self, name: str) -> int:
        return await self._run(_S.call("retry_failed", name))

    async def queue_pending(self, name: str, exact: bool = False) -> int:
        return await self._run(_S.call("vectorizer_queue_pending", name, exact=exact))

    async def enable_schedule(self, name: str) -> None:
        await self._run(_S.call("enable_vectorizer_schedule", name))

    async def disable_schedule(self, name: str) -> None:
        await self._run(_S.call("disable_vectorizer_schedule", name))

    async def execute_vectorizer(self, name: str, max_batches: int | None = None) -> None:
        await self._run(_S.execute_vectorizer(name, max_batches))

    async def wait(self, name: str, timeout: float | None = None, poll_interval: float = 0.5,
                   on_progress: Callable[[SyncProgress], None] | None = None) -> VectorizerStatus:
        """Like :meth:`Client.wait`; ``on_progress`` may be a plain function or a coroutine one."""
        start = time.monotonic()
        first = None
        while True:
            status = await self.status(name)
            first = first or status
            elapsed = time.monotonic() - start
            if on_progress:
                outcome = on_progress(SyncProgress.between(first, status, elapsed))
                if asyncio.iscoroutine(outcome):
                    await outcome
            if status.in_sync:
                return status
            if timeout is not None and elapsed >= timeout:
                raise _not_in_sync(status, timeout)
            await asyncio.sleep(poll_interval if timeout is None else
                                max(0.0, min(poll_interval, timeout - elapsed)))

    async def semantic_search(self, vectorizer: str, query: str, k: int = 10, *,
                              filter: Mapping[str, Any] | None = None,
                              where_clause: str | None = None) -> list[SearchResult]:
        """See :meth:`Client.semantic_search`."""
        v = await self._run(_S.vectorizer(vectorizer))
        return await self._run(_S.semantic_search(v, query, k, filter, where_clause))

    async def hybrid_search(self, vectorizer: str, query: str, k: int = 10, *,
                            filter: Mapping[str, Any] | None = None, where_clause: str | None = None,
                            vector_weight: float | None = None, text_weight: float | None = None,
                            rrf_k: int | None = None, language: str | None = None,
                            candidates: int | None = None) -> list[SearchResult]:
        """See :meth:`Client.hybrid_search`."""
        v = await self._run(_S.vectorizer(vectorizer))
        return await self._run(_S.hybrid_search(v, query, dict(
            k=k, vector_weight=vector_weight, text_weight=text_weight, rrf_k=rrf_k, filter=filter,
            where_clause=where_clause, language=language, candidates=candidates)))

    async def rag(self, vectorizer: str, question: str, model: str, k: int = 5, *,
                  filter: Mapping[str, Any] | None = None, where_clause: str | None = None,
                  system_prompt: str | None = None, implementation: str | None = None,
                  base_url: str | None = None, api_key_name: str | None = None,
                  options: Mapping[str, Any] | None = None) -> RagAnswer:
        """See :meth:`Client.rag`."""
        v = await self._run(_S.vectorizer(vectorizer))
        return await self._run(_S.rag(v, question, model, dict(
            k=k, filter=filter, where_clause=where_clause, system_prompt=system_prompt,
            implementation=implementation, base_url=base_url, api_key_name=api_key_name,
            options=options)))


def _register_vector(conn: psycopg.Connection) -> None:
    """Load pgvector values as pgvector.Vector when the extension is there (not before install)."""
    from pgvector.psycopg import register_vector

    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        pass  # no vector type yet: install() creates it
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()  # the lookups opened a transaction (connect(autocommit=False)): ours


async def _register_vector_async(conn: psycopg.AsyncConnection) -> None:
    """Async form of :func:`_register_vector`."""
    from pgvector.psycopg import register_vector_async

    try:
        await register_vector_async(conn)
    except psycopg.ProgrammingError:
        pass
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        await conn.rollback()
