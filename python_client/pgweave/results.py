"""Result types of the client: one dataclass per view or result set, fields named as its columns.

Rows become instances with :func:`from_row`, which ignores columns a dataclass does not know, so a
newer server with more columns never breaks an older client; columns a server lacks stay None.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, TypeVar

from psycopg import sql

__all__ = ["Vectorizer", "VectorizerStatus", "VectorizerError", "SyncProgress", "SearchResult",
           "RagAnswer", "from_row"]

T = TypeVar("T")

# Parts of a vectorizer's config that create_vectorizer takes back as arguments.
CONFIG_PARTS = ("loading", "parsing", "embedding", "chunking", "formatting", "indexing", "scheduling", "processing")


def from_row(cls: type[T], row: Mapping[str, Any]) -> T:
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
        config = {k: _strip_runtime(k, self.config[k]) for k in CONFIG_PARTS if k in self.config}
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
    """One row of ``ai.vectorizer_status``.

    ``processed_by`` ('background', 'worker 12 s ago', 'nobody: <reason>'), ``disabled`` and
    the current backlog (``backlog_done`` items since ``backlog_started_at``, when the queue was
    last found empty) come from servers that have them, and are None otherwise.
    """

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
    processed_by: str | None = None
    disabled: bool | None = None
    backlog_done: int | None = None
    backlog_started_at: datetime | None = None
    building_for: int | None = None      # a new generation: the id of the vectorizer it will replace
    next_generation: int | None = None   # a live vectorizer: the id of the generation being built

    @property
    def in_sync(self) -> bool:
        """Nothing waits in the queue (parked failed items are not waiting: see failed_items)."""
        return not self.pending_items

    @property
    def failing(self) -> bool:
        """Its runs fail: an error was recorded and no batch succeeded after it."""
        return self.last_error_at is not None and (
            self.last_success_at is None or self.last_success_at < self.last_error_at)

    @property
    def current_error(self) -> str | None:
        """The last error while it still stands (None once a later batch succeeded)."""
        return self.last_error if self.failing else None

    @property
    def unprocessed_because(self) -> str | None:
        """Why nothing processes its queue, when the server says nobody does ('nobody: …')."""
        by = self.processed_by or ""
        if not by.startswith("nobody"):
            return None
        return by.partition(":")[2].strip() or "no background job and no worker"


@dataclass(frozen=True)
class VectorizerError:
    """One row of ``ai.vectorizer_errors`` (``id`` is the vectorizer's, as in pgai)."""

    id: int
    vectorizer_id: int
    name: str | None
    recorded: datetime
    message: str
    details: dict | None = None
    error_id: int | None = None


@dataclass(frozen=True)
class SyncProgress:
    """A vectorizer's progress through its backlog, read from the database at one moment.

    ``done`` is the items the engine has processed in the current backlog (``backlog_done``
    where the server reports it, else its lifetime counter ``items_processed``) and ``total``
    those plus the pending ones, so the numbers are the same whoever looks and whenever they
    start looking. ``rate`` (items per second) is the backlog's own where the server says when
    it began, else the change of the counter between two looks (None until work is seen);
    ``eta`` (seconds) is the pending items at that rate.
    """

    status: VectorizerStatus
    done: int
    total: int
    elapsed: float
    rate: float | None = None

    @property
    def in_sync(self) -> bool:
        """Nothing waits in the queue."""
        return self.status.in_sync

    @property
    def eta(self) -> float | None:
        """Seconds until the pending items are done at the current rate."""
        if self.status.in_sync:
            return 0.0
        return (self.status.pending_items or 0) / self.rate if self.rate else None

    @classmethod
    def between(cls, first: VectorizerStatus, now: VectorizerStatus, elapsed: float) -> "SyncProgress":
        """Progress now, with the rate measured since ``first`` was read ``elapsed`` s ago."""
        if now.backlog_done is not None:
            done = now.backlog_done
            rate = _backlog_rate(now)
        else:
            done = now.items_processed or 0
            moved = done - (first.items_processed or 0)
            rate = moved / elapsed if moved > 0 and elapsed > 0 else None
        return cls(now, done, done + (now.pending_items or 0), elapsed, rate)


def _backlog_rate(s: VectorizerStatus) -> float | None:
    """Items per second over the current backlog, from when it began to its last success."""
    if not s.backlog_done or s.backlog_started_at is None or s.last_success_at is None:
        return None
    seconds = (s.last_success_at - s.backlog_started_at).total_seconds()
    return s.backlog_done / seconds if seconds > 0 else None


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
        """The chunk's text."""
        return self.row.get("chunk")


@dataclass(frozen=True)
class RagAnswer:
    """``ai.rag``'s result: the model's answer, the numbered sources it was given, the prompt."""

    answer: str
    sources: list[dict[str, Any]]
    prompt: str

