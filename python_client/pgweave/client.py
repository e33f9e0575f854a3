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
import os
import time
from typing import Any, Callable, Mapping, Sequence, overload

import psycopg

from .errors import NotInSync, NotProcessed, connection_failed, from_psycopg
from .results import RagAnswer, SearchResult, SyncProgress, Vectorizer, VectorizerError, VectorizerStatus
from .statements import ConfigValue, SqlCall, Statement
from .statements import Statements as _S

__all__ = ["Client", "AsyncClient", "resolve_dsn"]


def resolve_dsn(dsn: str | None = None) -> str:
    """--dsn, then PGWEAVE_DSN, then DATABASE_URL, then '' (libpq's own defaults: PGHOST...)."""
    return dsn or os.environ.get("PGWEAVE_DSN") or os.environ.get("DATABASE_URL") or ""


class _Waiting:
    """One wait for a vectorizer (shared by both clients): its looks and when the next is due."""

    def __init__(self, timeout: float | None, poll_interval: float):
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.start = time.monotonic()
        self.first: VectorizerStatus | None = None

    def look(self, status: VectorizerStatus) -> SyncProgress:
        """The progress a fresh status shows, its rate measured since the first look."""
        self.first = self.first or status
        return SyncProgress.between(self.first, status, time.monotonic() - self.start)

    def pause(self, progress: SyncProgress) -> float | None:
        """Seconds to sleep before the next look; None when in sync.

        Raises NotProcessed when the server says nothing processes the queue, and NotInSync
        once the timeout has passed.
        """
        status = progress.status
        if status.in_sync:
            return None
        if status.unprocessed_because:
            raise NotProcessed(status)
        if self.timeout is None:
            return self.poll_interval
        if progress.elapsed >= self.timeout:
            raise NotInSync(f"vectorizer {status.name!r} still has {status.pending_items} pending "
                            f"item(s) after {self.timeout:g} s", status)
        return max(0.0, min(self.poll_interval, self.timeout - progress.elapsed))


def _create_kwargs(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None)."""
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
        dsn = resolve_dsn(dsn)
        try:
            conn = psycopg.connect(dsn, **kwargs)
        except psycopg.Error as exc:
            raise connection_failed(exc, dsn) from exc
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

    def _run(self, statement: Statement) -> Any:
        """Run one statement; its result, or the client error for a database error."""
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
        loading: ConfigValue | None = None, parsing: ConfigValue | None = None,
        embedding: ConfigValue | None = None,
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
            name=name, destination=destination, loading=loading, parsing=parsing, embedding=embedding,
            chunking=chunking, formatting=formatting, indexing=indexing, scheduling=scheduling,
            processing=processing, target_schema=target_schema, target_table=target_table,
            view_schema=view_schema, view_name=view_name, queue_schema=queue_schema,
            queue_table=queue_table, grant_to=grant_to, enqueue_existing=enqueue_existing,
            if_not_exists=if_not_exists)))

    def drop_vectorizer(self, name: str, drop_all: bool = False) -> None:
        """``ai.drop_vectorizer``: with drop_all=False the store table and view stay."""
        self._run(_S.call("drop_vectorizer", name, drop_all=drop_all))

    def alter_vectorizer(self, name: str, **changes: Any) -> str:
        """``ai.alter_vectorizer(name, ...)``: keyword arguments as there (configurations as
        ``ai.<constructor>(...)`` calls or dicts); returns what it did, in words."""
        return self._run(_S.call("alter_vectorizer", name, **changes))

    def drop_vectorizer_store(self, view: str) -> None:
        """``ai.drop_vectorizer_store``: drop the view and store a drop kept (the embeddings)."""
        self._run(_S.call("drop_vectorizer_store", view))

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
        ``execute_vectorizer``). Raises :class:`NotInSync` after ``timeout`` seconds, and
        :class:`NotProcessed` at once when the server reports that nothing processes the queue.
        """
        waiting = _Waiting(timeout, poll_interval)
        while True:
            progress = waiting.look(self.status(name))
            if on_progress:
                on_progress(progress)
            pause = waiting.pause(progress)
            if pause is None:
                return progress.status
            time.sleep(pause)

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
        dsn = resolve_dsn(dsn)
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, **kwargs)
        except psycopg.Error as exc:
            raise connection_failed(exc, dsn) from exc
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

    async def _run(self, statement: Statement) -> Any:
        """Run one statement; its result, or the client error for a database error."""
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
        """See Client.version."""
        return await self._run(_S.version())

    async def create_vectorizer(
        self, source: str, *, name: str | None = None, destination: str | SqlCall | None = None,
        loading: ConfigValue | None = None, parsing: ConfigValue | None = None,
        embedding: ConfigValue | None = None,
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
            name=name, destination=destination, loading=loading, parsing=parsing, embedding=embedding,
            chunking=chunking, formatting=formatting, indexing=indexing, scheduling=scheduling,
            processing=processing, target_schema=target_schema, target_table=target_table,
            view_schema=view_schema, view_name=view_name, queue_schema=queue_schema,
            queue_table=queue_table, grant_to=grant_to, enqueue_existing=enqueue_existing,
            if_not_exists=if_not_exists)))

    async def drop_vectorizer(self, name: str, drop_all: bool = False) -> None:
        """See Client.drop_vectorizer."""
        await self._run(_S.call("drop_vectorizer", name, drop_all=drop_all))

    async def alter_vectorizer(self, name: str, **changes: Any) -> str:
        """See Client.alter_vectorizer."""
        return await self._run(_S.call("alter_vectorizer", name, **changes))

    async def drop_vectorizer_store(self, view: str) -> None:
        """See Client.drop_vectorizer_store."""
        await self._run(_S.call("drop_vectorizer_store", view))

    async def vectorizers(self) -> list[Vectorizer]:
        """See Client.vectorizers."""
        return await self._run(_S.vectorizers())

    async def vectorizer(self, name: str) -> Vectorizer:
        """See Client.vectorizer."""
        return await self._run(_S.vectorizer(name))

    @overload
    async def status(self) -> list[VectorizerStatus]: ...
    @overload
    async def status(self, name: str) -> VectorizerStatus: ...

    async def status(self, name: str | None = None) -> VectorizerStatus | list[VectorizerStatus]:
        return await self._run(_S.status(name))

    async def errors(self, name: str | None = None, limit: int | None = 50) -> list[VectorizerError]:
        """See Client.errors."""
        return await self._run(_S.errors(name, limit))

    async def retry_failed(self, name: str) -> int:
        """See Client.retry_failed."""
        return await self._run(_S.call("retry_failed", name))

    async def queue_pending(self, name: str, exact: bool = False) -> int:
        """See Client.queue_pending."""
        return await self._run(_S.call("vectorizer_queue_pending", name, exact=exact))

    async def enable_schedule(self, name: str) -> None:
        """See Client.enable_schedule."""
        await self._run(_S.call("enable_vectorizer_schedule", name))

    async def disable_schedule(self, name: str) -> None:
        """See Client.disable_schedule."""
        await self._run(_S.call("disable_vectorizer_schedule", name))

    async def execute_vectorizer(self, name: str, max_batches: int | None = None) -> None:
        """See Client.execute_vectorizer."""
        await self._run(_S.execute_vectorizer(name, max_batches))

    async def wait(self, name: str, timeout: float | None = None, poll_interval: float = 0.5,
                   on_progress: Callable[[SyncProgress], None] | None = None) -> VectorizerStatus:
        """Like :meth:`Client.wait`; ``on_progress`` may be a plain function or a coroutine one."""
        waiting = _Waiting(timeout, poll_interval)
        while True:
            progress = waiting.look(await self.status(name))
            if on_progress:
                outcome = on_progress(progress)
                if asyncio.iscoroutine(outcome):
                    await outcome
            pause = waiting.pause(progress)
            if pause is None:
                return progress.status
            await asyncio.sleep(pause)

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
