-- Re-applied on every install: the engine's entry points (plpython/pgweave_db/engine.py).
-- ai.execute_vectorizer drains a queue now; ai._scheduler (35_scheduler) drains every queue of
-- the database in the background. Both are procedures, because they commit after every batch;
-- so no SET clause (it would forbid that): the engine pins search_path per transaction and
-- qualifies every name instead. Neither touches a vectorizer's tables itself: that is done by
-- the vectorizer's own function ai._vectorizer_engine_<id>, with its owner's rights.

-- Write a vectorizer's engine function: owned by the vectorizer's owner, SECURITY DEFINER, so
-- the claim, the read of the source and the write of the store run with the owner's rights
-- whoever drives them, and nothing the owner controls can SET ROLE back (PostgreSQL refuses
-- it inside a SECURITY DEFINER function). PUBLIC may not call it. SECURITY DEFINER itself
-- (the installer): owners may not create PL/Python functions.
CREATE OR REPLACE FUNCTION ai._write_engine_function(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    fn text := ai._qualified('ai', '_vectorizer_engine_' || v.id);
BEGIN
    EXECUTE format($fmt$
        CREATE OR REPLACE FUNCTION %1$s(op text, payload text) RETURNS text
        LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
        AS $python$
if "pgweave" not in GD:
    plpy.error("pgweave's Python is not loaded in this session", sqlstate="55000",
               hint="call engine operations through ai._engine_op or ai.execute_vectorizer")
return GD["pgweave"].engine.run_op(%2$s, op, payload)
$python$$fmt$, fn, v.id);
    EXECUTE format('REVOKE ALL ON FUNCTION %s(text, text) FROM PUBLIC', fn);
    EXECUTE format('ALTER FUNCTION %s(text, text) OWNER TO %I', fn, v.owner);
END
$func$;

-- Load the in-database Python into this backend (with the caller's rights), so that a
-- vectorizer's engine function, which runs as its owner, finds it loaded.
CREATE OR REPLACE FUNCTION ai._python_ready() RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return True
$python$;

-- One batch of a vectorizer (engine.step): JSON {"items", "idle", "failed"}, or {"error", ...}
-- when it cannot even claim (recorded first, so that the caller commits the record).
CREATE OR REPLACE FUNCTION ai._engine_step(vectorizer_id int, skip bigint[], create_index boolean,
                                           runner text, only_if_work boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
import json
return json.dumps(GD["pgweave"].engine.step(vectorizer_id, skip, create_index, runner, only_if_work))
$python$;

-- Drain a vectorizer's queue now, in committed batches (max_batches: stop after that many).
-- Its owner's members and superusers may; the work runs with the owner's rights. Errors come
-- without PL/Python's class prefix: each batch runs in a function, between commits here.
-- Inside a transaction block it fails at once with PostgreSQL's "invalid transaction
-- termination" (SQLSTATE 2D000; the first thing it does is commit): CALL it in autocommit.
CREATE OR REPLACE PROCEDURE ai.execute_vectorizer(vectorizer_id int, max_batches int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    r pg_catalog.jsonb;
    skip bigint[] := '{}';
    total bigint := 0;
    batches int := 0;
    err_message text; err_state text; err_detail text; err_hint text; err_schema text; err_table text; err_column text;
BEGIN
    PERFORM ai._managed_vectorizer(vectorizer_id, 'process it');
    COMMIT;   -- fails at once inside a transaction block, before any work
    LOOP
        EXIT WHEN max_batches IS NOT NULL AND batches OPERATOR(pg_catalog.>=) max_batches;
        BEGIN
            r := ai._engine_step(vectorizer_id, skip, total OPERATOR(pg_catalog.>) 0, 'call');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_message = MESSAGE_TEXT, err_state = RETURNED_SQLSTATE,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT,
                                    err_schema = SCHEMA_NAME, err_table = TABLE_NAME, err_column = COLUMN_NAME;
            PERFORM ai._raise_python_error(err_message, err_state, err_detail, err_hint, err_schema, err_table, err_column);
            RAISE;
        END;
        COMMIT;
        IF r OPERATOR(pg_catalog.?) 'error' THEN
            RAISE EXCEPTION USING MESSAGE = r->>'error', ERRCODE = coalesce(r->>'sqlstate', '55000'),
                                  HINT = coalesce(r->>'hint', '');
        END IF;
        EXIT WHEN (r->>'idle')::boolean;
        batches := batches OPERATOR(pg_catalog.+) 1;
        total := total OPERATOR(pg_catalog.+) (r->>'items')::bigint;
        skip := skip OPERATOR(pg_catalog.||) ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r->'failed')::bigint);
    END LOOP;
END
$$;

CREATE OR REPLACE PROCEDURE ai.execute_vectorizer(name text, max_batches int DEFAULT NULL)
LANGUAGE plpgsql
AS $$
BEGIN
    CALL ai.execute_vectorizer(ai._vectorizer_id(name), max_batches);
END
$$;
