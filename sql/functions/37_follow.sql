-- Re-applied on every install: vectorizers follow what happens to their tables.
-- Event triggers find a vectorizer by its tables' OIDs (never by a trigger's or table's name,
-- which any role can give its own objects): ALTER TABLE on a source follows a rename, a move,
-- a renamed column, a new owner and its row-level security; dropping a source drops its
-- vectorizers; dropping a queue or the source's primary key is refused while a vectorizer
-- needs it. They are SECURITY DEFINER (any role may alter its own tables) and act only on
-- relations owned by the vectorizer's owner.

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
    view_rel regclass := v.view_relid::regclass;
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
        IF ai._reserved_column(new_name) THEN
            RAISE EXCEPTION 'key column "%" cannot be renamed to "%" while vectorizer "%" keeps it beside its own columns',
                old_name, new_name, v.name USING ERRCODE = '42701',
                HINT = 'choose another name (not embedding_uuid, chunk_seq, chunk, embedding, embedded_md5, nor one starting with _), or drop the vectorizer first';
        END IF;
        FOREACH t IN ARRAY ARRAY[v.target_relid::regclass::text, v.queue_relid::regclass::text,
                                 v.failed_relid::regclass::text] LOOP
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

-- After ALTER TABLE on a vectorizer's source (found by OID; a partition, a view or another
-- table that only carries a trigger of the same name is not the source):
-- - the catalog's names follow a rename or SET SCHEMA (the engine uses OIDs anyway);
-- - a renamed column the vectorizer names is followed (ai._follow_column_rename): a RENAME
--   COLUMN reports the column's number; its old name is the one name the vectorizer uses
--   that the table no longer has;
-- - a new owner of the source becomes the vectorizer's owner, with its store, view, queues
--   and functions;
-- - the store's policies are checked (ai._protect_store).
CREATE OR REPLACE FUNCTION ai._on_alter_table() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    col record;
    used name[];
    missing name[];
    rel oid;
BEGIN
    FOR r IN
        SELECT DISTINCT v.id, v.name, v.source_schema, v.source_table, v.owner, n.nspname, c.relname,
               c.oid AS relid, (SELECT o.rolname FROM pg_roles o WHERE o.oid = c.relowner) AS relowner
        FROM pg_event_trigger_ddl_commands() d
        JOIN ai.vectorizer v ON d.classid = 'pg_class'::regclass AND v.source_relid = d.objid
        JOIN pg_class c ON c.oid = v.source_relid
        JOIN pg_namespace n ON n.oid = c.relnamespace
    LOOP
        IF (r.source_schema, r.source_table) IS DISTINCT FROM (r.nspname, r.relname) THEN
            RAISE NOTICE 'vectorizer "%" follows its source: %.% is now %.%',
                r.name, r.source_schema, r.source_table, r.nspname, r.relname;
            UPDATE ai.vectorizer SET source_schema = r.nspname, source_table = r.relname WHERE id = r.id;
        END IF;
        IF r.relowner IS DISTINCT FROM r.owner THEN
            RAISE NOTICE 'vectorizer "%" follows its source to its new owner %', r.name, r.relowner;
            FOR rel IN SELECT unnest(ARRAY[v.target_relid, v.view_relid, v.queue_relid, v.failed_relid])
                       FROM ai.vectorizer v WHERE v.id = r.id LOOP
                IF ai._owned_by(rel, r.owner) THEN
                    EXECUTE format('ALTER TABLE %s OWNER TO %I', rel::regclass, r.relowner);
                END IF;
            END LOOP;
            UPDATE ai.vectorizer SET owner = r.relowner WHERE id = r.id;
            PERFORM ai._write_engine_function(r.id);
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
        END LOOP;
        -- The trigger watches what the table has now (also after a column renamed back).
        PERFORM ai._write_trigger_function(r.id);
        PERFORM ai._protect_store(r.id);
        IF ai._key_columns(r.relid) IS NULL THEN
            RAISE EXCEPTION 'table %.% keeps vectorizer "%", which keys its chunks by the primary key',
                r.nspname, r.relname, r.name USING ERRCODE = '2BP01',
                HINT = format('drop the vectorizer first: SELECT ai.drop_vectorizer(%L)', r.name);
        END IF;
    END LOOP;
    -- The store's, view's and queues' names follow their renames too (for display and search).
    UPDATE ai.vectorizer v SET target_schema = n.nspname, target_table = c.relname
    FROM pg_event_trigger_ddl_commands() d, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.classid = 'pg_class'::regclass AND d.objid = v.target_relid AND c.oid = v.target_relid
      AND (v.target_schema, v.target_table) IS DISTINCT FROM (n.nspname, c.relname);
    UPDATE ai.vectorizer v SET view_schema = n.nspname, view_name = c.relname
    FROM pg_event_trigger_ddl_commands() d, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.classid = 'pg_class'::regclass AND d.objid = v.view_relid AND c.oid = v.view_relid
      AND (v.view_schema, v.view_name) IS DISTINCT FROM (n.nspname, c.relname);
END
$$;

DROP EVENT TRIGGER IF EXISTS pgweave_on_alter_table;
CREATE EVENT TRIGGER pgweave_on_alter_table ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER VIEW')
    EXECUTE FUNCTION ai._on_alter_table();

-- When a source table is dropped (DROP TABLE ... CASCADE takes the view with it), remove what
-- is left of its vectorizers (queues, functions, a store left without its source). A vectorizer's queue dropped on its own (its source stays) is
-- refused: every write to the source would fail. Found by OID; SECURITY DEFINER so that any
-- role may drop its own tables.
CREATE OR REPLACE FUNCTION ai._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer;
BEGIN
    FOR v IN
        SELECT vz.* FROM ai.vectorizer vz
        WHERE vz.source_relid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                                  WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0)
          AND vz.generation_of IS NULL   -- a generation being built goes with its live one
    LOOP
        RAISE NOTICE 'dropping vectorizer "%" of dropped table %.%', v.name, v.source_schema, v.source_table;
        PERFORM ai.drop_vectorizer(v.id, drop_all => true);
    END LOOP;
    FOR v IN
        SELECT vz.* FROM ai.vectorizer vz
        WHERE vz.queue_relid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0)
    LOOP
        RAISE EXCEPTION 'table % is the queue of vectorizer "%"', ai._qualified(v.queue_schema, v.queue_table), v.name
            USING ERRCODE = '2BP01',
            HINT = format('drop the vectorizer instead: SELECT ai.drop_vectorizer(%L)', v.name);
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS pgweave_on_sql_drop;
CREATE EVENT TRIGGER pgweave_on_sql_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION ai._on_sql_drop();

-- Every install writes each vectorizer's functions and store policies anew, from the catalog
-- and the code of this version (a no-op for what is already current).
DO $$
DECLARE
    vid int;
BEGIN
    FOR vid IN SELECT v.id FROM ai.vectorizer v WHERE v.source_relid IS NOT NULL ORDER BY v.id LOOP
        PERFORM ai._write_trigger_function(vid);
        PERFORM ai._write_engine_function(vid);
        PERFORM ai._protect_store(vid);
    END LOOP;
END
$$;
