-- Re-applied on every install, last: who may call what.
-- plpython3u functions reach the network from the database server, so nobody gets them by
-- default: PUBLIC loses EXECUTE on every ai function, and a DBA grants roles explicitly.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA ai FROM PUBLIC;
REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA ai FROM PUBLIC;

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
END
$$;
REVOKE EXECUTE ON FUNCTION ai.grant_ai_usage(name, boolean) FROM PUBLIC;
