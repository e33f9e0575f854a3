"""Hardening: superuser-controlled model hosts, environment secrets and limits; the secret policy.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

from pgweave.migration_sql import drop_code, run_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file(op, "catalog/0007_hardening.sql")


def downgrade() -> None:
    drop_code(op)
    op.execute("DROP TABLE IF EXISTS ai._model_host, ai._environment_secret, ai._model_call_limit")
    op.execute("""
        DROP POLICY IF EXISTS secret_granted ON ai._secret;
        CREATE POLICY secret_granted ON ai._secret FOR SELECT USING (
            EXISTS (SELECT 1 FROM ai._secret_permission p
                    WHERE p.name IN (ai._secret.name, '*')
                      AND pg_catalog.pg_has_role(current_user, p.role, 'MEMBER')))""")
