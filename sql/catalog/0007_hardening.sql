-- Created once, by alembic revision 0007. Never edited after release.
-- What a superuser decides about model calls. Every ai.* setting can be SET by any role (or
-- put on itself with ALTER ROLE), so nothing a role may not override lives in a setting: these
-- tables are written by their owner (the superuser who installed pgweave) and read by all.

-- Hosts the database server may send model requests to, besides the hosts the configured
-- settings name (ai.ollama_host, ai.openai_base_url set by ALTER SYSTEM, postgresql.conf or
-- ALTER DATABASE). An entry is a host name or address, optionally with ':port'; 'loopback'
-- stands for localhost, 127.0.0.0/8 and ::1; '*' allows every host.
CREATE TABLE IF NOT EXISTS ai._model_host (
    host text PRIMARY KEY CHECK (host = lower(host) AND host ~ '^[^/\s@]+$'),
    note text
);
INSERT INTO ai._model_host (host, note)
VALUES ('loopback', 'localhost, 127.0.0.0/8 and ::1: a model server on the database machine')
ON CONFLICT DO NOTHING;

-- Names of the server's environment variables an API key may be read from (api_key_name).
-- Empty by default: the postgres environment holds paths and may hold cloud credentials.
CREATE TABLE IF NOT EXISTS ai._environment_secret (
    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$')
);

-- Upper bounds on what one model call (or one row) may cost the backend.
CREATE TABLE IF NOT EXISTS ai._model_call_limit (
    name  text PRIMARY KEY CHECK (name IN ('max_http_timeout', 'max_reply_bytes', 'max_chunks_per_row')),
    value float8 NOT NULL CHECK (value > 0),
    note  text
);
INSERT INTO ai._model_call_limit (name, value, note) VALUES
    ('max_http_timeout', 600, 'seconds; ai.http_timeout above it is lowered to it'),
    ('max_reply_bytes', 33554432, 'bytes of one reply body (32 MiB)'),
    ('max_chunks_per_row', 10000, 'chunks one source row may make')
ON CONFLICT DO NOTHING;

REVOKE ALL ON ai._model_host, ai._environment_secret, ai._model_call_limit FROM PUBLIC;
GRANT SELECT ON ai._model_host, ai._environment_secret, ai._model_call_limit TO PUBLIC;

-- A grant to a role that was dropped since must not break the secret for everyone else:
-- pg_has_role(name) raises for an unknown name, so the policy joins pg_roles first.
DROP POLICY IF EXISTS secret_granted ON ai._secret;
CREATE POLICY secret_granted ON ai._secret FOR SELECT USING (
    EXISTS (SELECT 1 FROM ai._secret_permission p
                     JOIN pg_catalog.pg_roles r ON r.rolname = p.role
            WHERE p.name IN (ai._secret.name, '*')
              AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER'))
);
