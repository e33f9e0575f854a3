"""Foundation: extensions, the ai schema, the install record and the code table.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from pgweave.migration_sql import drop_ai_objects, run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0001_foundation.sql")


def downgrade() -> None:
    drop_ai_objects(op)
