"""Search: the query-embedding cache.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0004_search.sql")


def downgrade() -> None:
    drop_code(op)
    op.execute("DROP TABLE IF EXISTS ai._query_embedding_cache")
