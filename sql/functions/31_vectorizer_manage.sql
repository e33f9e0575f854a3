-- Re-applied on every install: scheduling, dropping, retrying and cleaning up vectorizers.

-- The pg_cron job name of a vectorizer.
CREATE OR REPLACE FUNCTION ai._job_name(vectorizer_id int) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT 'pgweave_vectorizer_' || vectorizer_id $$;

-- Schedule the background job: pg_cron starts it every minute; it stays resident for
-- loop_seconds (> 60, so the next start is queued behind it and coverage has no gap).
CREATE OR REPLACE FUNCTION ai._schedule_vectorizer(vectorizer_id int) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    job bigint;
BEGIN
    job := cron.schedule(ai._job_name(v.id), coalesce(v.config->'scheduling'->>'schedule', '* * * * *'),
                         format('CALL ai._vectorizer_job(%s)', v.id));
    UPDATE ai.vectorizer SET config = jsonb_set(config, '{scheduling,job_id}', to_jsonb(job))
    WHERE id = v.id;
    RETURN job;
END
$$;

-- Turn a vectorizer's background job on or off (the queue keeps filling either way).
CREATE OR REPLACE FUNCTION ai._set_schedule_active(vectorizer_id int, active boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
BEGIN
    UPDATE ai.vectorizer
    SET config = CASE WHEN active THEN config #- '{scheduling,disabled}'
                      ELSE jsonb_set(config, '{scheduling,disabled}', 'true') END
    WHERE id = v.id;
    IF v.config->'scheduling'->>'implementation' = 'cron' THEN
        PERFORM cron.alter_job((v.config->'scheduling'->>'job_id')::bigint, active => active);
    END IF;
END
$$;

-- Stop a vectorizer's background job from starting.
CREATE OR REPLACE FUNCTION ai.disable_vectorizer_schedule(vectorizer_id int) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(vectorizer_id, false) $$;

CREATE OR REPLACE FUNCTION ai.disable_vectorizer_schedule(name text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(ai._vectorizer_id(name), false) $$;

-- Let a vectorizer's background job start again.
CREATE OR REPLACE FUNCTION ai.enable_vectorizer_schedule(vectorizer_id int) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(vectorizer_id, true) $$;

CREATE OR REPLACE FUNCTION ai.enable_vectorizer_schedule(name text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(ai._vectorizer_id(name), true) $$;

-- Remove a vectorizer: its job, triggers and queues; with drop_all also its store and view.
CREATE OR REPLACE FUNCTION ai.drop_vectorizer(vectorizer_id int, drop_all boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    qual_source text := ai._qualified(v.source_schema, v.source_table);
BEGIN
    IF v.config->'scheduling'->>'implementation' = 'cron'
       AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        PERFORM cron.unschedule(jobid) FROM cron.job WHERE jobname = ai._job_name(v.id);
    END IF;
    IF to_regclass(qual_source) IS NOT NULL THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v.trigger_name, qual_source);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v.trigger_name || '_truncate', qual_source);
    END IF;
    EXECUTE format('DROP FUNCTION IF EXISTS %s()', ai._qualified('ai', v.trigger_name));
    EXECUTE format('DROP TABLE IF EXISTS %s, %s', ai._qualified(v.queue_schema, v.queue_table),
                   ai._qualified(v.queue_schema, v.queue_failed_table));
    IF drop_all THEN
        EXECUTE format('DROP VIEW IF EXISTS %s', ai._qualified(v.view_schema, v.view_name));
        EXECUTE format('DROP TABLE IF EXISTS %s', ai._qualified(v.target_schema, v.target_table));
    END IF;
    DELETE FROM ai._vectorizer_errors WHERE ai._vectorizer_errors.vectorizer_id = v.id;
    DELETE FROM ai.vectorizer WHERE id = v.id;
END
$$;

CREATE OR REPLACE FUNCTION ai.drop_vectorizer(name text, drop_all boolean DEFAULT false) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.drop_vectorizer(ai._vectorizer_id(name), drop_all) $$;

-- After fixing the cause of failures: move parked items back to the queue for another set of
-- attempts, and make the items still backing off due now. Returns how many parked items moved.
CREATE OR REPLACE FUNCTION ai.retry_failed(vectorizer_id int) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    moved bigint;
BEGIN
    EXECUTE format('WITH parked AS (DELETE FROM %s RETURNING %s) INSERT INTO %s (%s) SELECT %s FROM parked',
                   ai._qualified(v.queue_schema, v.queue_failed_table), ai._pk_list(v.source_pk),
                   ai._qualified(v.queue_schema, v.queue_table), ai._pk_list(v.source_pk),
                   ai._pk_list(v.source_pk));
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('UPDATE %s SET _retry_after = NULL WHERE _retry_after > now()',
                   ai._qualified(v.queue_schema, v.queue_table));
    PERFORM pg_notify('ai_vectorizer', v.id::text);
    RETURN moved;
END
$$;

CREATE OR REPLACE FUNCTION ai.retry_failed(name text) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.retry_failed(ai._vectorizer_id(name)) $$;

-- Items waiting in the queue. exact => false stops counting at 10,000 and estimates beyond.
-- SECURITY DEFINER: status readers need counts, not rights on the queue; it counts only a
-- vectorizer's own queue.
CREATE OR REPLACE FUNCTION ai.vectorizer_queue_pending(vectorizer_id int, exact boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    qual text := ai._qualified(v.queue_schema, v.queue_table);
    n bigint;
BEGIN
    IF to_regclass(qual) IS NULL THEN
        RETURN NULL;
    END IF;
    IF exact THEN
        EXECUTE format('SELECT count(*) FROM %s', qual) INTO n;
        RETURN n;
    END IF;
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s LIMIT 10001) q', qual) INTO n;
    IF n > 10000 THEN
        SELECT greatest(n, c.reltuples::bigint) INTO n FROM pg_class c WHERE c.oid = to_regclass(qual);
    END IF;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION ai.vectorizer_queue_pending(name text, exact boolean DEFAULT false) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.vectorizer_queue_pending(ai._vectorizer_id(name), exact) $$;

-- Parked items and stored chunks of a vectorizer (NULL when its tables are gone); for the
-- status view. SECURITY DEFINER like vectorizer_queue_pending: counts, never contents.
CREATE OR REPLACE FUNCTION ai._vectorizer_counts(vectorizer_id int, OUT failed_items bigint, OUT stored_chunks bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
BEGIN
    IF to_regclass(ai._qualified(v.queue_schema, v.queue_failed_table)) IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %s', ai._qualified(v.queue_schema, v.queue_failed_table)) INTO failed_items;
    END IF;
    IF to_regclass(ai._qualified(v.target_schema, v.target_table)) IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %s', ai._qualified(v.target_schema, v.target_table)) INTO stored_chunks;
    END IF;
END
$$;

-- A column of a vectorizer's source was renamed from old_name to new_name: the catalog, the
-- store's and queues' key columns and the view's column follow (the caller rewrites the
-- trigger function). Names change, nothing is embedded again. A template can only name simple
-- identifiers ($name): a template column renamed to anything else is not followed (warning),
-- and the engine then records the error until it is renamed back.
CREATE OR REPLACE FUNCTION ai._follow_column_rename(vectorizer_id int, old_name name, new_name name)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    new_config jsonb := v.config;
    tmpl text := coalesce(v.config->'formatting'->>'template', '$chunk');
    view_rel regclass := to_regclass(ai._qualified(v.view_schema, v.view_name));
    t text;
BEGIN
    IF old_name = ANY(ai._template_columns(tmpl)) THEN
        IF new_name !~ '^[_A-Za-z][_A-Za-z0-9]*$' THEN
            RAISE WARNING 'vectorizer "%": the formatting template names column "%", which cannot be written as $name after its rename to "%"',
                v.name, old_name, new_name
                USING HINT = 'rename the column back, or drop the vectorizer and create it with another template';
            RETURN;
        END IF;
        tmpl := regexp_replace(tmpl, '(?<!\$)\$\{' || old_name || '\}', '${' || new_name || '}', 'g');
        tmpl := regexp_replace(tmpl, '(?<!\$)\$' || old_name || '(?![_A-Za-z0-9])', '$' || new_name, 'g');
        new_config := jsonb_set(new_config, '{formatting,template}', to_jsonb(tmpl));
        new_config := jsonb_set(new_config, '{formatting,columns}', to_jsonb(ai._template_columns(tmpl)));
    END IF;
    IF new_config->'loading'->>'column_name' = old_name THEN
        new_config := jsonb_set(new_config, '{loading,column_name}', to_jsonb(new_name));
    END IF;
    IF v.source_pk @> jsonb_build_array(jsonb_build_object('attname', old_name)) THEN
        IF new_name IN ('embedding_uuid', 'chunk_seq', 'chunk', 'embedding', 'embedded_md5') OR new_name LIKE '\_%' THEN
            RAISE EXCEPTION 'key column "%" cannot be renamed to "%" while vectorizer "%" keeps it beside its own columns',
                old_name, new_name, v.name USING ERRCODE = '42701',
                HINT = 'choose another name (not embedding_uuid, chunk_seq, chunk, embedding, embedded_md5, nor one starting with _), or drop the vectorizer first';
        END IF;
        FOREACH t IN ARRAY ARRAY[ai._qualified(v.target_schema, v.target_table),
                                 ai._qualified(v.queue_schema, v.queue_table),
                                 ai._qualified(v.queue_schema, v.queue_failed_table)] LOOP
            EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', t, old_name, new_name);
        END LOOP;
        v.source_pk := (SELECT jsonb_agg(CASE WHEN k->>'attname' = old_name
                                              THEN jsonb_set(k, '{attname}', to_jsonb(new_name)) ELSE k END)
                        FROM jsonb_array_elements(v.source_pk) k);
    END IF;
    IF view_rel IS NOT NULL
       AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = view_rel AND attname = old_name AND NOT attisdropped)
       AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = view_rel AND attname = new_name) THEN
        EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', view_rel, old_name, new_name);
    END IF;
    UPDATE ai.vectorizer SET config = new_config, source_pk = v.source_pk
    WHERE id = v.id;
    RAISE NOTICE 'vectorizer "%" follows the rename of column "%" to "%"', v.name, old_name, new_name;
END
$$;

-- After ALTER TABLE on a source table:
-- - a rename or SET SCHEMA is followed: the catalog names the source, and the engine, status
--   and drop trigger find it by that name. The table is found by its row trigger (named after
--   the vectorizer), which moves with it; the view and triggers refer to it by oid.
-- - a renamed column the vectorizer names (its key, the loaded column, a template column) is
--   followed (ai._follow_column_rename). A RENAME COLUMN reports the column's number; its old
--   name is the one name the vectorizer uses that the table no longer has.
-- - the store's row-level security is switched like the source's (ai._protect_store).
-- SECURITY DEFINER: whoever may alter the source updates the catalog and the store, owner or not.
CREATE OR REPLACE FUNCTION ai._on_alter_table() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    col record;
    used name[];
    missing name[];
BEGIN
    FOR r IN
        SELECT DISTINCT v.id, v.name, v.source_schema, v.source_table, n.nspname, c.relname, c.oid AS relid
        FROM pg_event_trigger_ddl_commands() d
        JOIN pg_trigger t ON d.classid = 'pg_class'::regclass AND t.tgrelid = d.objid
        JOIN ai.vectorizer v ON t.tgname = '_vectorizer_src_trg_' || v.id
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
    LOOP
        IF (r.source_schema, r.source_table) IS DISTINCT FROM (r.nspname, r.relname) THEN
            RAISE NOTICE 'vectorizer "%" follows its source: %.% is now %.%',
                r.name, r.source_schema, r.source_table, r.nspname, r.relname;
            UPDATE ai.vectorizer SET source_schema = r.nspname, source_table = r.relname WHERE id = r.id;
        END IF;
        FOR col IN
            SELECT DISTINCT a.attname FROM pg_event_trigger_ddl_commands() d
            JOIN pg_attribute a ON a.attrelid = d.objid AND a.attnum = d.objsubid
            WHERE d.classid = 'pg_class'::regclass AND d.objid = r.relid AND d.objsubid > 0
              AND d.command_tag = 'ALTER TABLE'
        LOOP
            SELECT array_agg(DISTINCT u) INTO used FROM ai.vectorizer v,
                unnest(ARRAY(SELECT k->>'attname' FROM jsonb_array_elements(v.source_pk) k)::name[]
                       || ai._embedded_columns(v.config)) u
            WHERE v.id = r.id;
            SELECT array_agg(u) INTO missing FROM unnest(used) u
            WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.relid AND a.attname = u
                              AND a.attnum > 0 AND NOT a.attisdropped);
            IF cardinality(missing) = 1 AND col.attname <> ALL(used) THEN
                PERFORM ai._follow_column_rename(r.id, missing[1], col.attname);
            END IF;
            -- The trigger watches what the table has now (also after a column renamed back).
            PERFORM ai._write_trigger_function(r.id);
        END LOOP;
        PERFORM ai._protect_store(r.id);
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS pgweave_on_alter_table;
CREATE EVENT TRIGGER pgweave_on_alter_table ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION ai._on_alter_table();

-- When a source table is dropped (DROP TABLE ... CASCADE takes the view with it), remove
-- what is left of its vectorizers so that none stays behind half-broken.
CREATE OR REPLACE FUNCTION ai._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer;
BEGIN
    FOR v IN
        SELECT vz.* FROM ai.vectorizer vz
        JOIN pg_event_trigger_dropped_objects() d
          ON d.object_type = 'table' AND d.schema_name = vz.source_schema AND d.object_name = vz.source_table
    LOOP
        RAISE NOTICE 'dropping vectorizer "%" of dropped table %.%', v.name, v.source_schema, v.source_table;
        PERFORM ai.drop_vectorizer(v.id, drop_all => true);
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS pgweave_on_sql_drop;
CREATE EVENT TRIGGER pgweave_on_sql_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION ai._on_sql_drop();
