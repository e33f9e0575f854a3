"""Stores keep their embeddings in the row (toast_tuple_target), not in the TOAST table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from alembic import op

from pgweave.migration_sql import run_sql_file

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0010_inline_embeddings.sql")


def downgrade() -> None:
    op.execute("""DO $$
        DECLARE store regclass;
        BEGIN
            FOR store IN SELECT v.target_relid::regclass FROM ai.vectorizer v
                         WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = v.target_relid)
            LOOP
                EXECUTE pg_catalog.format('ALTER TABLE %s RESET (toast_tuple_target)', store);
            END LOOP;
        END $$""")
