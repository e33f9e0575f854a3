-- Created once, by alembic revision 0002. Never edited after release.
-- API keys for model servers. Row-level security shows a secret only to roles granted it
-- (ai.grant_secret); superusers and the owner see all. PUBLIC reads nothing by default.
CREATE TABLE IF NOT EXISTS ai._secret (
    name  text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$'),
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS ai._secret_permission (
    name text NOT NULL,            -- a secret name, or '*' for every secret
    role name NOT NULL,
    PRIMARY KEY (name, role)
);
ALTER TABLE ai._secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY secret_granted ON ai._secret FOR SELECT USING (
    EXISTS (SELECT 1 FROM ai._secret_permission p
            WHERE p.name IN (ai._secret.name, '*')
              AND pg_catalog.pg_has_role(current_user, p.role, 'MEMBER'))
);
REVOKE ALL ON ai._secret, ai._secret_permission FROM PUBLIC;
GRANT SELECT ON ai._secret, ai._secret_permission TO PUBLIC;
