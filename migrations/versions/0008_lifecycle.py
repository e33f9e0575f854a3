"""Lifecycle: a vectorizer changed without downtime builds a new generation beside the live one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0008_lifecycle.sql")


def downgrade() -> None:
    drop_code(op)
    pass
