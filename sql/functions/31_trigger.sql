-- Re-applied on every install: the trigger on a vectorizer's source, the first stage of a
-- row's path. A row's key goes to the queue (32_queue) when the row appears, changes what is
-- embedded (the loaded column or a template column), changes its key, or goes away; a
-- truncate empties the store, and the engine never sees those rows again.

-- Write the trigger function of a vectorizer from its catalog row: at creation, on every
-- install, and when a column it names is renamed (37_follow). The function is owned by the
-- vectorizer's owner and SECURITY DEFINER, so every writer of the source queues with the
-- owner's rights and no more; PUBLIC cannot execute it, and it refuses to run for any table
-- but its source, so nobody can attach it elsewhere to flood the queue or empty the store.
-- SECURITY DEFINER (the installer): owners may not create functions in schema ai.
CREATE OR REPLACE FUNCTION ai._write_trigger_function(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    fn text := ai._qualified('ai', v.trigger_name);
    watched text;
BEGIN
    -- What is embedded changed: the loaded or a template column. If one of them is gone (renamed
    -- to a name a template cannot hold), any change counts, so that writes to the source never
    -- fail on a missing field; the engine records why it cannot embed.
    SELECT CASE WHEN bool_and(EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = v.source_relid AND a.attname = c
                                      AND a.attnum > 0 AND NOT a.attisdropped))
                THEN string_agg(format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', c), ' OR ')
                ELSE 'pg_catalog.to_jsonb(OLD) IS DISTINCT FROM pg_catalog.to_jsonb(NEW)' END
    INTO watched
    FROM unnest(ai._embedded_columns(v.config)) c;
    -- A document named by a path or URL lives outside the row: any UPDATE of the row (even
    -- SET path = path) is how a user says the file changed (unchanged chunks are reused).
    IF v.config->'loading'->>'implementation' = 'uri' THEN
        watched := 'true';
    END IF;
    EXECUTE format($fmt$
        CREATE OR REPLACE FUNCTION %1$s() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
        AS $trg$
        BEGIN
            IF TG_RELID <> %9$s THEN
                RAISE EXCEPTION 'the trigger function of vectorizer %3$s serves only its source table'
                    USING ERRCODE = '42501';
            END IF;
            IF TG_OP = 'TRUNCATE' THEN
                TRUNCATE %2$s;
                PERFORM pg_catalog.pg_notify('ai_vectorizer', '%3$s');
                RETURN NULL;
            END IF;
            IF TG_OP = 'INSERT' THEN
                INSERT INTO %4$s (%5$s) VALUES (%6$s);
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO %4$s (%5$s) VALUES (%7$s);
            ELSIF (%7$s) IS DISTINCT FROM (%6$s) THEN   -- the key itself changed
                INSERT INTO %4$s (%5$s) VALUES (%7$s), (%6$s);
            ELSIF %8$s THEN                             -- what is embedded changed
                INSERT INTO %4$s (%5$s) VALUES (%6$s);
            ELSE
                RETURN NULL;                            -- nothing embedded changed: no work
            END IF;
            PERFORM pg_catalog.pg_notify('ai_vectorizer', '%3$s');
            RETURN NULL;
        END
        $trg$$fmt$,
        fn, v.target_relid::regclass, v.id, v.queue_relid::regclass, ai._pk_list(v.source_pk),
        ai._pk_list(v.source_pk, 'NEW.'), ai._pk_list(v.source_pk, 'OLD.'), watched, v.source_relid);
    EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', fn);
    EXECUTE format('ALTER FUNCTION %s() OWNER TO %I', fn, v.owner);
END
$func$;

-- Attach the row and truncate triggers to the source (at creation, by its owner). ENABLE
-- ALWAYS: they fire for the apply worker of a logical replication subscription too (which
-- runs with session_replication_role = replica, where ordinary triggers stay silent), so
-- rows that arrive on a subscriber are vectorized there; the store is the subscriber's own.
CREATE OR REPLACE FUNCTION ai._create_triggers(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
BEGIN
    PERFORM ai._write_trigger_function(v.id);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()',
                   v.trigger_name, v.source_relid::regclass, ai._qualified('ai', v.trigger_name));
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                   v.trigger_name || '_truncate', v.source_relid::regclass, ai._qualified('ai', v.trigger_name));
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I, ENABLE ALWAYS TRIGGER %I', v.source_relid::regclass,
                   v.trigger_name, v.trigger_name || '_truncate');
END
$$;
