"""Secrets: ai._secret with row-level security and ai._secret_permission.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0002_secrets.sql")


def downgrade() -> None:
    drop_code(op)
    op.execute("DROP TABLE IF EXISTS ai._secret, ai._secret_permission")
