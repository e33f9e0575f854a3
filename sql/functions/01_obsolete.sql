-- Re-applied on every install, early: what earlier versions installed and this one replaced.
-- One job per vectorizer gave way to one scheduler per database (35_scheduler).
DO $$
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        PERFORM cron.unschedule(j.jobid) FROM cron.job j WHERE j.jobname LIKE 'pgweave\_vectorizer\_%';
    END IF;
END
$$;
DROP PROCEDURE IF EXISTS ai._vectorizer_job(int);
DROP FUNCTION IF EXISTS ai._job_name(int);
DROP FUNCTION IF EXISTS ai._schedule_vectorizer(int);
DROP VIEW IF EXISTS ai.vectorizer_status;
DROP FUNCTION IF EXISTS ai._vectorizer_counts(int);
DROP FUNCTION IF EXISTS ai._raise_python_error(text, text, text, text);   -- now also keeps the object fields
-- Signatures and columns that changed for pgai's SQL (60_pgai_compat): recreated by their files.
DROP VIEW IF EXISTS ai.vectorizer_errors;
DROP FUNCTION IF EXISTS ai.vectorizer_queue_pending(int, boolean);
DROP FUNCTION IF EXISTS ai.vectorizer_queue_pending(text, boolean);
DROP FUNCTION IF EXISTS ai.ollama_list_models(text), ai._ollama_list_models_py(text);
DROP FUNCTION IF EXISTS ai.ollama_ps(text), ai._ollama_ps_py(text);
-- create_vectorizer took no parsing argument before documents (21_loading_parsing).
DROP FUNCTION IF EXISTS ai.create_vectorizer(regclass, text, text, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb,
                                             jsonb, name, name, name, name, name, name, name[], boolean, boolean);
-- The query cache's reader answered through a Python gateway, as text, before searches read it
-- from SQL (51_query_cache); the parts of a search came from Python, with the query's vector
-- rather than its cache key (50_search).
DROP FUNCTION IF EXISTS ai._query_cache_get(text);
DROP FUNCTION IF EXISTS ai._search_parts_py(oid, text, jsonb, text, oid, boolean);
DO $$
BEGIN
    IF (SELECT prorettype FROM pg_proc WHERE oid = to_regprocedure('ai._query_cache_read(text)')) = 'text'::regtype THEN
        DROP FUNCTION ai._query_cache_read(text);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = to_regprocedure('ai._search_parts(oid, text, jsonb, text, oid, boolean)')
               AND NOT 'query_vector' = ANY (proargnames)) THEN
        DROP FUNCTION ai._search_parts(oid, text, jsonb, text, oid, boolean);
    END IF;
END
$$;
-- A search's settings were its iterative scans only (50_search: ai._search_settings).
DROP FUNCTION IF EXISTS ai._search_relax_scans();
DROP FUNCTION IF EXISTS ai._search_restore_scans(text[]);
DROP FUNCTION IF EXISTS ai._search_plain_first(int);
-- enable_mergejoin was set and restored by hand before the search functions' SET clause did it.
DROP FUNCTION IF EXISTS ai._search_settings(boolean);
DROP FUNCTION IF EXISTS ai._search_plain_first(int, text[]);
-- The cached query vector had a function of its own before ai._search_parts read it.
DROP FUNCTION IF EXISTS ai._search_query_vector(int, text, text);
