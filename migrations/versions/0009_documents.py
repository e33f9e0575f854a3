"""Documents: where files and URLs may be loaded from, and the limits of one document.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0009_documents.sql")


def downgrade() -> None:
    drop_code(op)
    op.execute("DROP TABLE IF EXISTS ai._document_source, ai._document_limit")
