-- Re-applied on every install: managing API keys for model servers, and what a superuser allows.

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

-- ===== what a superuser allows (tables of sql/catalog/0007_hardening.sql) ==================

-- The model-server URLs configured where no role can override them for itself: the settings
-- ai.ollama_host and ai.openai_base_url in postgresql.conf or by ALTER SYSTEM (read through
-- pg_file_settings, which only a superuser may read: hence SECURITY DEFINER), and by ALTER
-- DATABASE for this database (or ALTER ROLE ALL). Not a session's SET, not a role's own ALTER ROLE.
CREATE OR REPLACE FUNCTION ai._configured_model_urls() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT setting FROM pg_catalog.pg_file_settings
    WHERE name IN ('ai.ollama_host', 'ai.openai_base_url') AND error IS NULL
    UNION
    SELECT substr(c, strpos(c, '=') + 1)
    FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS c
    WHERE s.setrole = 0
      AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
      AND (c LIKE 'ai.ollama\_host=%' OR c LIKE 'ai.openai\_base\_url=%')
$$;

-- Keep (quiet) or restore the STATEMENT line a failing statement gets in the server log, for
-- the rest of this transaction. The entry points of functions that take a literal api_key
-- call it around the call, so a failed call never writes the key to the log. SECURITY DEFINER
-- because log_min_error_statement is a superuser's setting; it sets that one setting to
-- 'panic' or back to its configured value, nothing else.
CREATE OR REPLACE FUNCTION ai._quiet_failed_statement(quiet boolean) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.set_config('log_min_error_statement',
        CASE WHEN quiet THEN 'panic'
             ELSE (SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'log_min_error_statement') END,
        true)
$$;
