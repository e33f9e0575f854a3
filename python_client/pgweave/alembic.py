"""Alembic operations for vectorizers, for the migrations of your own application.

Import this module once where alembic loads it (your ``env.py``)::

    import pgweave.alembic  # registers op.create_vectorizer and op.drop_vectorizer

then declare, change and remove vectorizers in ordinary revisions::

    from alembic import op
    from pgweave import ai

    def upgrade():
        op.create_vectorizer("blog", name="blog_embedding",
                             loading=ai.loading_column("contents"),
                             embedding=ai.embedding_ollama("all-minilm", 384))

    def downgrade():
        op.drop_vectorizer("blog_embedding", drop_all=True)

Each operation runs one call of the SQL API (``ai.create_vectorizer`` / ``ai.drop_vectorizer``
/ ``ai.alter_vectorizer``) in the revision's transaction, rendered with literal values so that
``alembic upgrade --sql`` prints it too. The operations are reversible: a create's reverse
drops the vectorizer with its store and view (what the create made); a drop's reverse
recreates it from the ``definition`` the drop was given, over the store the drop kept (adopted:
nothing is embedded again); an alter's reverse alters back to the ``previous`` settings it was
given.

Autogenerate: stores, views and queues are pgweave's, not your models'. One line in env.py
keeps them out of ``alembic revision --autogenerate`` (and this import teaches SQLAlchemy
pgvector's ``vector`` type)::

    context.configure(..., include_object=pgweave.alembic.include_object)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from alembic.autogenerate import renderers
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql.base import ischema_names
from alembic.operations import MigrateOperation, Operations
from psycopg import sql

from .statements import Statements

__all__ = ["AlterVectorizerOp", "CreateVectorizerOp", "DropVectorizerOp", "include_object",
           "minimal_definition", "render_create_vectorizer"]

# Reflected `vector` columns get pgvector's type, not "Did not recognize type 'vector'".
ischema_names["vector"] = Vector


def _sql_text(statement: sql.Composable) -> sqlalchemy.TextClause:
    """An SQL statement with literal values as a text() alembic can run or print.

    Rendered without a connection (standard-conforming strings, as every supported server),
    so it works with any driver and offline; colons are escaped because text() reads
    ``:name`` as a bind parameter (``'{"a": 1}'::jsonb`` must stay as it is).
    """
    return sqlalchemy.text(statement.as_string(None).replace(":", r"\:"))


@Operations.register_operation("create_vectorizer")
class CreateVectorizerOp(MigrateOperation):
    """``ai.create_vectorizer(source, ...)`` as an alembic operation."""

    def __init__(self, source: str, *, drop_kept_store: bool = False, **arguments: Any):
        self.source = source
        self.arguments = {k: v for k, v in arguments.items() if v is not None}
        self.drop_kept_store = drop_kept_store

    @property
    def name(self) -> str | None:
        return self.arguments.get("name")

    @classmethod
    def create_vectorizer(cls, operations: Operations, source: str, *,
                          drop_kept_store: bool = False, **arguments: Any) -> None:
        """Create a vectorizer: the keyword arguments of ``ai.create_vectorizer``.

        Configurations are ``ai.<constructor>(...)`` calls (``from pgweave import ai``) or
        dicts (jsonb). ``drop_kept_store=True`` first drops the store table and view that an
        earlier ``drop_vectorizer(drop_all=False)`` left behind (they would collide); it needs
        ``view_name`` and ``target_table`` (and their schemas, when not the source's).
        """
        return operations.invoke(cls(source, drop_kept_store=drop_kept_store, **arguments))

    def reverse(self) -> "DropVectorizerOp":
        # Undoing a create removes everything it made: the store's data is derived, and a
        # kept store would make upgrading again fail on "relation already exists".
        if not self.name:
            raise ValueError("create_vectorizer needs name=... to be reversible: the name is "
                             "what drop_vectorizer finds it by")
        return DropVectorizerOp(self.name, drop_all=True, definition=self.definition())

    def definition(self) -> dict[str, Any]:
        """The keyword arguments that recreate this vectorizer (source included)."""
        return {"source": self.source, **self.arguments}

    def kept_store_sql(self) -> list[sql.Composed]:
        """DROP VIEW/TABLE IF EXISTS of the destination a drop without drop_all kept."""
        args = self.arguments
        if not (args.get("view_name") and args.get("target_table")):
            raise ValueError("drop_kept_store=True needs view_name and target_table (and their "
                             "schemas), e.g. from pgweave's Vectorizer.definition() or "
                             "`pgweave vectorizers show NAME`")

        def qualified(schema: str | None, name: str) -> sql.Identifier:
            return sql.Identifier(schema, name) if schema else sql.Identifier(name)

        view = qualified(args.get("view_schema"), args["view_name"])
        table = qualified(args.get("target_schema") or args.get("view_schema"), args["target_table"])
        return [sql.SQL("DROP VIEW IF EXISTS {}").format(view),
                sql.SQL("DROP TABLE IF EXISTS {}").format(table)]


@Operations.register_operation("drop_vectorizer")
class DropVectorizerOp(MigrateOperation):
    """``ai.drop_vectorizer(name, drop_all)`` as an alembic operation."""

    def __init__(self, name: str, drop_all: bool = False,
                 definition: dict[str, Any] | None = None):
        self.name = name
        self.drop_all = drop_all
        self.definition = dict(definition) if definition else None

    @classmethod
    def drop_vectorizer(cls, operations: Operations, name: str, drop_all: bool = False, *,
                        definition: dict[str, Any] | None = None) -> None:
        """Drop a vectorizer. drop_all=False (the default) keeps its store table and view.

        ``definition`` (the keyword arguments of ``create_vectorizer``, source included)
        makes the operation reversible: ``op.invoke(DropVectorizerOp(...).reverse())``.
        """
        return operations.invoke(cls(name, drop_all, definition))

    def reverse(self) -> CreateVectorizerOp:
        if not self.definition:
            raise ValueError(f"drop_vectorizer({self.name!r}) needs definition=... (the arguments "
                             "of create_vectorizer) to be reversible")
        definition = {"name": self.name, **self.definition}
        # A kept store is adopted by the create (its embeddings are reused), not dropped.
        return CreateVectorizerOp(definition.pop("source"), **definition)


@Operations.register_operation("alter_vectorizer")
class AlterVectorizerOp(MigrateOperation):
    """``ai.alter_vectorizer(name, ...)`` as an alembic operation."""

    def __init__(self, name: str, *, previous: dict[str, Any] | None = None, **arguments: Any):
        self.name = name
        self.arguments = {k: v for k, v in arguments.items() if v is not None}
        self.previous = dict(previous) if previous else None

    @classmethod
    def alter_vectorizer(cls, operations: Operations, name: str, *,
                         previous: dict[str, Any] | None = None, **arguments: Any) -> None:
        """Change a vectorizer: the keyword arguments of ``ai.alter_vectorizer``.

        Processing, scheduling, indexing, grant_to and new_name change in place; loading,
        embedding, chunking and formatting build a new generation in the background that
        takes over when it has caught up (the migration does not wait for it). ``previous``
        (the same keywords, as they were) makes the operation reversible.
        """
        return operations.invoke(cls(name, previous=previous, **arguments))

    def reverse(self) -> "AlterVectorizerOp":
        if not self.previous:
            raise ValueError(f"alter_vectorizer({self.name!r}) needs previous=... (the settings "
                             "before the change) to be reversible")
        back = dict(self.previous)
        if "new_name" in self.arguments:
            back["new_name"] = self.name
        return AlterVectorizerOp(self.arguments.get("new_name", self.name), previous=self.arguments, **back)


@Operations.implementation_for(AlterVectorizerOp)
def _alter_vectorizer(operations: Operations, operation: AlterVectorizerOp) -> None:
    operations.execute(_sql_text(
        Statements.call("alter_vectorizer", operation.name, **operation.arguments).query))


@Operations.implementation_for(CreateVectorizerOp)
def _create_vectorizer(operations: Operations, operation: CreateVectorizerOp) -> None:
    if operation.drop_kept_store:
        for statement in operation.kept_store_sql():
            operations.execute(_sql_text(statement))
    operations.execute(_sql_text(
        Statements.create_vectorizer(operation.source, operation.arguments).query))


@Operations.implementation_for(DropVectorizerOp)
def _drop_vectorizer(operations: Operations, operation: DropVectorizerOp) -> None:
    operations.execute(_sql_text(
        Statements.call("drop_vectorizer", operation.name, drop_all=operation.drop_all).query))


def render_create_vectorizer(definition: dict[str, Any]) -> str:
    """Python source of ``op.create_vectorizer(...)`` for a definition (source included)."""
    definition = dict(definition)
    # SqlCall's repr is ai.<function>(...), dicts and scalars are Python literals.
    parts = [repr(definition.pop("source"))] + [f"{k}={v!r}" for k, v in definition.items()]
    return "op.create_vectorizer(\n    " + ",\n    ".join(parts) + ",\n)"


@renderers.dispatch_for(CreateVectorizerOp)
def _render_create(autogen_context, operation: CreateVectorizerOp) -> str:
    autogen_context.imports.add("from pgweave import ai")
    autogen_context.imports.add("import pgweave.alembic")
    return render_create_vectorizer(operation.definition())


@renderers.dispatch_for(AlterVectorizerOp)
def _render_alter(autogen_context, operation: AlterVectorizerOp) -> str:
    autogen_context.imports.add("import pgweave.alembic")
    parts = [repr(operation.name)] + [f"{k}={v!r}" for k, v in operation.arguments.items()]
    if operation.previous:
        parts.append(f"previous={operation.previous!r}")
    return "op.alter_vectorizer(" + ", ".join(parts) + ")"


@renderers.dispatch_for(DropVectorizerOp)
def _render_drop(autogen_context, operation: DropVectorizerOp) -> str:
    autogen_context.imports.add("import pgweave.alembic")
    extra = f", definition={operation.definition!r}" if operation.definition else ""
    return f"op.drop_vectorizer({operation.name!r}, drop_all={operation.drop_all!r}{extra})"


# -- autogenerate and `pgweave vectorizers show --alembic` -------------------------------------

_STORE_COLUMNS = {"embedding_uuid", "chunk_seq", "chunk", "embedding", "embedded_md5"}
_QUEUE_COLUMNS = {"_id", "_queued_at", "_attempts", "_retry_after"}


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """alembic's include_object hook: leave out what pgweave made (stores, their indexes,
    queues, schema ai), which no model of yours declares; include everything else."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    if table is None or not isinstance(table, sqlalchemy.Table):
        return True
    if table.schema == "ai":
        return False
    columns = {c.name for c in table.columns}
    return not (_STORE_COLUMNS <= columns or _QUEUE_COLUMNS <= columns)


# The configurations ai.create_vectorizer takes when an argument is left out.
DEFAULTS_QUERY = """SELECT ai.chunking_recursive_character_text_splitter() AS chunking,
    ai.formatting_python_template() AS formatting, ai.indexing_default() AS indexing,
    ai.scheduling_default() AS scheduling, ai.processing_default() AS processing,
    ai.parsing_auto() AS parsing"""


def minimal_definition(definition: dict[str, Any], defaults: dict[str, Any],
                       keep_scheduling: bool = False) -> dict[str, Any]:
    """A definition without what ai.create_vectorizer would choose anyway (``defaults``: the
    row of DEFAULTS_QUERY), and without scheduling unless kept: a migration runs in other
    databases, where background processing is theirs to arrange."""
    out = dict(definition)
    source_schema, _, source_table = str(out["source"]).rpartition(".")
    view_name = out.get("view_name")
    derived = {"view_schema": source_schema.strip('"') or None,
               "view_name": source_table.strip('"') + "_embedding",
               "target_schema": out.get("view_schema"),
               "target_table": f"{view_name}_store"}
    for key, value in derived.items():
        if out.get(key) == value:
            out.pop(key)
    formatting = {k: v for k, v in (out.get("formatting") or {}).items() if k != "columns"}
    if "formatting" in out:
        out["formatting"] = formatting
    for part in ("parsing", "chunking", "formatting", "indexing", "processing"):
        if part in out and out[part] == defaults.get(part):
            out.pop(part)
    if not keep_scheduling or out.get("scheduling") == defaults.get("scheduling"):
        out.pop("scheduling", None)
    return out
