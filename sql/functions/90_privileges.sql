-- Re-applied on every install, last: who may call what.
-- plpython3u functions reach the network from the database server, so nobody gets them by
-- default: PUBLIC loses EXECUTE on every ai function, and a DBA grants roles explicitly with
-- ai.grant_ai_usage. The functions only the installer runs are never granted.

-- Every function in ai runs with a pinned search_path, so nothing it calls resolves through
-- a schema another role can write to. (Procedures that commit cannot carry a SET clause; they
-- qualify every name instead.)
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid FROM pg_proc p
             WHERE p.pronamespace = 'ai'::regnamespace AND p.prokind = 'f'
               AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END
$$;

-- Functions no role is granted: those only the installer (a superuser) calls, and those that
-- read or write ai's tables as their owner for pgweave's own code (the query cache's,
-- 51_query_cache.sql; the evaluation history's, 75_evaluation.sql).
CREATE OR REPLACE FUNCTION ai._installer_only() RETURNS regprocedure[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(p) FROM unnest(ARRAY[
        'ai._record_scheduler(name, text[], integer, text)', 'ai.grant_ai_usage(name, boolean)',
        'ai._python_entry_point(regprocedure, name)', 'ai._installer_only()',
        'ai._query_cache_put(text, real[])',
        'ai._evaluation_insert(jsonb, jsonb)']) f, to_regprocedure(f) p
    WHERE p IS NOT NULL
$$;

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ai FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA ai FROM PUBLIC;

-- What a user of pgweave may do, granted to the role pgweave_user (shared by every database
-- of the cluster; each install grants it this database's functions, so roles granted before
-- an upgrade get the new functions too): call its functions, and create, process and drop
-- vectorizers on the tables it owns. The catalog: every role reads it; writes are limited by
-- its row-level security to the vectorizers of tables the role owns (0005_execution_model.sql).
DO $$
DECLARE
    f regprocedure;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgweave_user') THEN
        CREATE ROLE pgweave_user NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgweave_user', current_database());
    GRANT USAGE ON SCHEMA ai TO pgweave_user;
    FOR f IN SELECT p.oid FROM pg_proc p
             WHERE p.pronamespace = 'ai'::regnamespace AND p.proname !~ '^_vectorizer_(src_trg|engine)_[0-9]'
               AND p.oid <> ALL(coalesce(ai._installer_only(), '{}'))
    LOOP
        EXECUTE format('GRANT EXECUTE ON %s %s TO pgweave_user',
                       CASE WHEN (SELECT prokind FROM pg_proc WHERE oid = f) = 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, f);
    END LOOP;
    GRANT SELECT, INSERT, DELETE ON ai.vectorizer TO pgweave_user;
    GRANT UPDATE (name, config, generation_of, generation_reuse) ON ai.vectorizer TO pgweave_user;
    GRANT SELECT, INSERT, UPDATE ON ai._vectorizer_progress TO pgweave_user;
    GRANT SELECT, INSERT, DELETE ON ai._vectorizer_errors TO pgweave_user;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO pgweave_user', pg_get_serial_sequence('ai.vectorizer', 'id'));
    GRANT SELECT ON ai.pgweave_install, ai._python_module, ai._scheduler, ai._worker_seen TO pgweave_user;
    GRANT SELECT ON ai.vectorizer_status, ai.vectorizer_errors, ai.secret_permissions TO pgweave_user;
    GRANT SELECT ON ai.evaluation_run, ai.evaluation_query TO pgweave_user;   -- their RLS decides the rows
    -- Roles granted before pgweave_user existed (ai.grant_ai_usage once granted directly) keep
    -- no direct right on what no role may call.
    FOR f IN SELECT x FROM unnest(ai._installer_only()) x LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, pgweave_user', f);
    END LOOP;
END
$$;

-- Give a role everything it needs to use pgweave's functions (admin: it may grant them on).
CREATE OR REPLACE FUNCTION ai.grant_ai_usage(to_user name, admin boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('GRANT pgweave_user TO %I%s', to_user, CASE WHEN admin THEN ' WITH ADMIN OPTION' ELSE '' END);
END
$$;
REVOKE EXECUTE ON FUNCTION ai.grant_ai_usage(name, boolean) FROM PUBLIC;
