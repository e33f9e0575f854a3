"""Vectorizers: the catalog, errors and progress tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0003_vectorizers.sql")


def downgrade() -> None:
    drop_code(op)
    op.execute("DROP TABLE IF EXISTS ai._vectorizer_progress, ai._vectorizer_errors, ai.vectorizer")
