"""Evaluation: the history of retrieval and RAG evaluations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0006_evaluation.sql")


def downgrade() -> None:
    drop_code(op)
    op.execute("DROP TABLE IF EXISTS ai.evaluation_query, ai.evaluation_run")
