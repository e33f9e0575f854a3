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

Each operation runs one call of the SQL API (``ai.create_vectorizer`` / ``ai.drop_vectorizer``)
in the revision's transaction, rendered with literal values so that ``alembic upgrade --sql``
prints it too. The operations are reversible: a create's reverse drops the vectorizer with
its store and view (what the create made); a drop's reverse recreates it from the
``definition`` the drop was given.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations
from psycopg import sql

from .statements import Statements

__all__ = ["CreateVectorizerOp", "DropVectorizerOp", "render_create_vectorizer"]


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
        return CreateVectorizerOp(definition.pop("source"), drop_kept_store=not self.drop_all,
                                  **definition)


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


@renderers.dispatch_for(DropVectorizerOp)
def _render_drop(autogen_context, operation: DropVectorizerOp) -> str:
    autogen_context.imports.add("import pgweave.alembic")
    extra = f", definition={operation.definition!r}" if operation.definition else ""
    return f"op.drop_vectorizer({operation.name!r}, drop_all={operation.drop_all!r}{extra})"
