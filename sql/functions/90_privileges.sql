-- Re-applied on every install, last: who may call what.
-- plpython3u functions reach the network from the database server, so nobody gets them by
-- default: PUBLIC loses EXECUTE on every ai function, and a DBA grants roles explicitly.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ai FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA ai FROM PUBLIC;

-- Functions no role may call, not even through ai.grant_ai_usage: they read or write ai's
-- tables as their owner, for pgweave's own code (the query cache's, 51_query_cache.sql; the evaluation history's, 75_evaluation.sql).
CREATE OR REPLACE FUNCTION ai._owner_only_functions() RETURNS regprocedure[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['ai._query_cache_get(text)', 'ai._query_cache_put(text, real[])',
                    'ai._evaluation_insert(jsonb, jsonb)']::regprocedure[] $$;

-- Take EXECUTE on the owner-only functions from a role (NULL: from every role that has it).
CREATE OR REPLACE FUNCTION ai._revoke_owner_only(from_user name DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT f, a.grantee::regrole::text AS grantee
             FROM unnest(ai._owner_only_functions()) f, pg_proc p, aclexplode(p.proacl) a
             WHERE p.oid = f AND a.grantee <> 0 AND a.grantee <> p.proowner
               AND (from_user IS NULL OR a.grantee = (SELECT oid FROM pg_roles WHERE rolname = from_user))
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s', r.f, r.grantee);
    END LOOP;
END
$$;
SELECT ai._revoke_owner_only();

-- Give a role everything it needs to use pgweave's functions (admin: also with grant option).
CREATE OR REPLACE FUNCTION ai.grant_ai_usage(to_user name, admin boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grant_option text := CASE WHEN admin THEN ' WITH GRANT OPTION' ELSE '' END;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA ai TO %I%s', to_user, grant_option);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ai TO %I%s', to_user, grant_option);
    EXECUTE format('GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA ai TO %I%s', to_user, grant_option);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA ai TO %I%s', to_user, grant_option);
    PERFORM ai._revoke_owner_only(to_user);
END
$$;
REVOKE EXECUTE ON FUNCTION ai.grant_ai_usage(name, boolean) FROM PUBLIC;
