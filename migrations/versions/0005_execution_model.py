"""Execution model: vectorizers known by OID, one scheduler per database.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0005_execution_model.sql")


def downgrade() -> None:
    drop_code(op)
    pass
