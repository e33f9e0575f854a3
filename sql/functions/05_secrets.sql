-- Re-applied on every install: managing API keys for model servers.

-- Store (or replace) a secret; only roles that may write ai._secret (its owner) can.
CREATE OR REPLACE FUNCTION ai.store_secret(name text, value text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO ai._secret (name, value) VALUES (store_secret.name, store_secret.value)
    ON CONFLICT ON CONSTRAINT _secret_pkey DO UPDATE SET value = excluded.value
$$;

-- Delete a secret.
CREATE OR REPLACE FUNCTION ai.delete_secret(name text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM ai._secret s WHERE s.name = delete_secret.name $$;

-- Let a role (and its members) use a secret by name; '*' grants every secret.
CREATE OR REPLACE FUNCTION ai.grant_secret(secret_name text, grant_to_role name) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO ai._secret_permission (name, role) VALUES (secret_name, grant_to_role)
    ON CONFLICT DO NOTHING
$$;

-- Take a secret back from a role.
CREATE OR REPLACE FUNCTION ai.revoke_secret(secret_name text, revoke_from_role name) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM ai._secret_permission p WHERE p.name = secret_name AND p.role = revoke_from_role $$;

-- Which secrets exist and who may use them (names only, never values).
CREATE OR REPLACE VIEW ai.secret_permissions AS
    SELECT name, role FROM ai._secret_permission;
GRANT SELECT ON ai.secret_permissions TO PUBLIC;
