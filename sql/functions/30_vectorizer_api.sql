-- Re-applied on every install: declaring, finding and dropping vectorizers.
-- A vectorizer owns: a store table and a view beside the source, a queue and a failed-items
-- queue in schema ai, a trigger function and two triggers on the source, and optionally a
-- pg_cron job. Row path: trigger (this file) → queue → engine (plpython/pgweave_db/engine.py)
-- → store → view → search.

-- Quote a schema-qualified name; the one place dynamic SQL here gets its identifiers.
CREATE OR REPLACE FUNCTION ai._qualified(schema_name name, object_name name) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT format('%I.%I', schema_name, object_name) $$;

-- pgvector's type, schema-qualified (functions here run with a pinned search_path).
CREATE OR REPLACE FUNCTION ai._vector_type() RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT format('%I.vector', n.nspname) FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'
$$;

-- The vectorizer's id for a name (or error saying which names exist).
CREATE OR REPLACE FUNCTION ai._vectorizer_id(vectorizer_name text) RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_id int;
BEGIN
    SELECT v.id INTO found_id FROM ai.vectorizer v WHERE v.name = vectorizer_name;
    IF found_id IS NULL THEN
        RAISE EXCEPTION 'vectorizer "%" does not exist', vectorizer_name
            USING ERRCODE = '42704',
                  HINT = coalesce('existing vectorizers: ' ||
                      (SELECT string_agg(v.name, ', ' ORDER BY v.name) FROM ai.vectorizer v),
                      'create one with ai.create_vectorizer(...)');
    END IF;
    RETURN found_id;
END
$$;

-- The vectorizer's catalog row for an id (or error).
CREATE OR REPLACE FUNCTION ai._vectorizer(vectorizer_id int) RETURNS ai.vectorizer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer;
BEGIN
    SELECT * INTO v FROM ai.vectorizer WHERE id = vectorizer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = '42704',
            HINT = 'list them with SELECT id, name FROM ai.vectorizer';
    END IF;
    RETURN v;
END
$$;

-- Column list of the source key, e.g. "id", "lang" (prefix: "s."); one place to quote them.
CREATE OR REPLACE FUNCTION ai._pk_list(source_pk jsonb, prefix text DEFAULT '') RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT string_agg(prefix || quote_ident(k->>'attname'), ', ' ORDER BY (k->>'pknum')::int)
    FROM jsonb_array_elements(source_pk) k
$$;

-- Join condition of the source key between two aliases, e.g. a."id" = b."id".
CREATE OR REPLACE FUNCTION ai._pk_join(source_pk jsonb, a text, b text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT string_agg(format('%s.%I = %s.%I', a, k->>'attname', b, k->>'attname'), ' AND '
                      ORDER BY (k->>'pknum')::int)
    FROM jsonb_array_elements(source_pk) k
$$;

-- Column definitions of the source key, e.g. "id" bigint NOT NULL.
CREATE OR REPLACE FUNCTION ai._pk_columns(source_pk jsonb, not_null boolean) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT string_agg(format('%I %s%s', k->>'attname', k->>'typname',
                             CASE WHEN not_null THEN ' NOT NULL' ELSE '' END), ', '
                      ORDER BY (k->>'pknum')::int)
    FROM jsonb_array_elements(source_pk) k
$$;

-- The identifiers a formatting template refers to, besides $chunk.
CREATE OR REPLACE FUNCTION ai._template_columns(template text) RETURNS name[]
LANGUAGE sql IMMUTABLE
AS $$
    SELECT coalesce(array_agg(DISTINCT coalesce(m[1], m[2])::name)
                    FILTER (WHERE coalesce(m[1], m[2]) <> 'chunk'), '{}')
    FROM regexp_matches(template, '\$(?:\{([_A-Za-z][_A-Za-z0-9]*)\}|([_A-Za-z][_A-Za-z0-9]*))', 'g') m
$$;

-- Row-level security of a vectorizer's store, so that the store is no way around the source's.
-- The view is security_invoker, so its readers need SELECT on the store itself (grant_to gives
-- it), and the store holds the text of every source row. Two policies, always present:
--   pgweave_writers: a role that may write the store (INSERT, UPDATE or DELETE; the engine's
--     role) sees and changes all of it, so chunks of rows it cannot see are still replaced
--     and deleted;
--   pgweave_source_rows: any other role sees the chunks of the source rows it can see. The
--     EXISTS runs with the caller's rights, so the source's own policies decide. (OFFSET 0:
--     one index probe per chunk read, not a hash of the whole source per query.)
-- They are in force while the source has row-level security enabled: the store's is switched
-- on and off with the source's, here (create_vectorizer, every install) and by the event
-- trigger ai._on_alter_table (31_vectorizer_manage.sql) on every ALTER TABLE of a source. The store's owner, superusers and BYPASSRLS
-- roles are never subject to them. For a role subject to them, reading the store needs SELECT
-- on the source's key columns, and a full-text match on the store cannot use its GIN index
-- (@@ is not leakproof, so it may not run before the policies): hybrid search then reads the
-- whole store. Vector search keeps its index (the policy filters the index scan).
CREATE OR REPLACE FUNCTION ai._protect_store(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    store regclass := to_regclass(ai._qualified(v.target_schema, v.target_table));
    source regclass := to_regclass(ai._qualified(v.source_schema, v.source_table));
    source_rls boolean;
BEGIN
    IF store IS NULL OR source IS NULL THEN
        RETURN;   -- a half-dropped vectorizer: nothing to protect
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = store AND p.polname = 'pgweave_writers') THEN
        EXECUTE format($p$CREATE POLICY pgweave_writers ON %s FOR ALL
            USING ((SELECT pg_catalog.has_table_privilege(%s::pg_catalog.oid, 'INSERT, UPDATE, DELETE')))
            WITH CHECK (true)$p$, store, store::oid);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = store AND p.polname = 'pgweave_source_rows') THEN
        -- The store is referred to by its bare name: that is how a policy names its own table.
        EXECUTE format($p$CREATE POLICY pgweave_source_rows ON %s FOR SELECT
            USING (EXISTS (SELECT 1 FROM %s pgweave_source WHERE %s OFFSET 0))$p$,
            store, source, ai._pk_join(v.source_pk, 'pgweave_source', quote_ident(v.target_table)));
    END IF;
    SELECT c.relrowsecurity INTO source_rls FROM pg_class c WHERE c.oid = source;
    IF source_rls IS DISTINCT FROM (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = store) THEN
        EXECUTE format('ALTER TABLE %s %s ROW LEVEL SECURITY', store,
                       CASE WHEN source_rls THEN 'ENABLE' ELSE 'DISABLE' END);
    END IF;
END
$$;

-- The source columns whose values a vectorizer embeds: the loaded column and the template's.
CREATE OR REPLACE FUNCTION ai._embedded_columns(config jsonb) RETURNS name[]
LANGUAGE sql IMMUTABLE
AS $$
    SELECT array_append(ai._template_columns(coalesce(config->'formatting'->>'template', '$chunk')),
                        (config->'loading'->>'column_name')::name)
$$;

-- The function of a vectorizer's row and truncate triggers on its source, written from the
-- catalog row: at creation, and again when a column it names is renamed (ai._on_alter_table).
-- A row's key goes to the queue when the row appears, changes what is embedded (the loaded
-- column or a template column), changes its key, or goes away; a truncate empties the store.
-- SECURITY DEFINER so that every writer of the source can queue without rights on the queue.
CREATE OR REPLACE FUNCTION ai._write_trigger_function(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    source regclass := to_regclass(ai._qualified(v.source_schema, v.source_table));
    watched text;
BEGIN
    -- What is embedded changed: the loaded or a template column. If one of them is gone (renamed
    -- to a name a template cannot hold), any change counts, so that writes to the source never
    -- fail on a missing field; the engine records why it cannot embed.
    SELECT CASE WHEN bool_and(EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = source AND a.attname = c
                                      AND a.attnum > 0 AND NOT a.attisdropped))
                THEN string_agg(format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', c), ' OR ')
                ELSE 'to_jsonb(OLD) IS DISTINCT FROM to_jsonb(NEW)' END
    INTO watched
    FROM unnest(ai._embedded_columns(v.config)) c;
    EXECUTE format($fmt$
        CREATE OR REPLACE FUNCTION %1$s() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
        AS $trg$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                TRUNCATE %2$s;
                PERFORM pg_notify('ai_vectorizer', '%3$s');
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
            PERFORM pg_notify('ai_vectorizer', '%3$s');
            RETURN NULL;
        END
        $trg$$fmt$,
        ai._qualified('ai', v.trigger_name), ai._qualified(v.target_schema, v.target_table), v.id,
        ai._qualified(v.queue_schema, v.queue_table), ai._pk_list(v.source_pk),
        ai._pk_list(v.source_pk, 'NEW.'), ai._pk_list(v.source_pk, 'OLD.'), watched);
END
$func$;

-- Declare a vectorizer on a table: from now on its rows' chunks and embeddings follow every
-- insert, update, delete and truncate. Returns the vectorizer id.
CREATE OR REPLACE FUNCTION ai.create_vectorizer(
    source regclass,
    name text DEFAULT NULL,
    destination text DEFAULT NULL,
    loading jsonb DEFAULT NULL,
    embedding jsonb DEFAULT NULL,
    chunking jsonb DEFAULT NULL,
    formatting jsonb DEFAULT NULL,
    indexing jsonb DEFAULT NULL,
    scheduling jsonb DEFAULT NULL,
    processing jsonb DEFAULT NULL,
    target_schema name DEFAULT NULL,
    target_table name DEFAULT NULL,
    view_schema name DEFAULT NULL,
    view_name name DEFAULT NULL,
    queue_schema name DEFAULT NULL,
    queue_table name DEFAULT NULL,
    grant_to name[] DEFAULT NULL,
    enqueue_existing boolean DEFAULT true,
    if_not_exists boolean DEFAULT false
) RETURNS int
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    src_schema name;
    src_table name;
    src_owner regrole;
    pk jsonb;
    column_name name;
    template text;
    missing name[];
    dest jsonb := '{}';
    vid int;
    vname text;
    dims int;
    qual_source text;
    qual_store text;
    qual_view text;
    qual_queue text;
    qual_failed text;
    trigger_fn text;
    view_columns text;
    config jsonb;
    r name;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'source must not be NULL' USING ERRCODE = '22004',
            HINT = 'pass the table, e.g. ai.create_vectorizer(''blog''::regclass, ...)';
    END IF;
    SELECT n.nspname, c.relname, c.relowner::regrole INTO src_schema, src_table, src_owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = source AND c.relkind IN ('r', 'p');
    IF src_table IS NULL THEN
        RAISE EXCEPTION '% is not a table', source USING ERRCODE = '42809',
            HINT = 'vectorizers follow ordinary (or partitioned) tables, not views or other relations';
    END IF;
    qual_source := ai._qualified(src_schema, src_table);

    -- Only the owner (or a member of the owning role, or a superuser) may attach triggers.
    IF NOT pg_has_role(current_user, src_owner, 'MEMBER') THEN
        RAISE EXCEPTION 'only the owner of table % (role %) or a superuser may create a vectorizer on it',
            qual_source, src_owner USING ERRCODE = '42501',
            HINT = format('ask the owner, or a superuser, to run it; or GRANT %s TO %I', src_owner, current_user);
    END IF;

    SELECT jsonb_agg(jsonb_build_object('attname', a.attname,
                                        'typname', format_type(a.atttypid, a.atttypmod),
                                        'pknum', k.pknum) ORDER BY k.pknum)
    INTO pk
    FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pknum)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = source AND i.indisprimary;
    IF pk IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key', qual_source USING ERRCODE = '42P16',
            HINT = format('vectorizers key each chunk by the row''s primary key: ALTER TABLE %s ADD PRIMARY KEY (...)', qual_source);
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(pk) k
               WHERE k->>'attname' IN ('embedding_uuid', 'chunk_seq', 'chunk', 'embedding', 'embedded_md5')
                  OR k->>'attname' LIKE '\_%') THEN
        RAISE EXCEPTION 'a primary key column of % is named like a store or queue column', qual_source
            USING ERRCODE = '42701',
            HINT = 'primary key columns may not be named embedding_uuid, chunk_seq, chunk, embedding, embedded_md5, or start with _';
    END IF;

    -- Embedding: which model and how many dimensions.
    IF embedding IS NULL OR NOT embedding ? 'implementation' THEN
        RAISE EXCEPTION 'embedding is required' USING ERRCODE = '22004',
            HINT = 'e.g. embedding => ai.embedding_ollama(''all-minilm'', 384)';
    END IF;
    dims := (embedding->>'dimensions')::int;
    IF dims IS NULL OR dims < 1 OR dims > 16000 THEN
        RAISE EXCEPTION 'embedding dimensions must be between 1 and 16000, got %', coalesce(dims::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'all-minilm has 384: ai.embedding_ollama(''all-minilm'', 384)';
    END IF;
    IF coalesce(embedding->>'model', '') = '' THEN
        RAISE EXCEPTION 'embedding model must be named' USING ERRCODE = '22004',
            HINT = 'e.g. ai.embedding_ollama(''all-minilm'', 384)';
    END IF;

    -- Loading: the column to embed, from loading (current form) or chunking (2024 form).
    chunking := coalesce(chunking, ai.chunking_recursive_character_text_splitter());
    column_name := coalesce(loading->>'column_name', chunking->>'chunk_column');
    IF column_name IS NULL THEN
        RAISE EXCEPTION 'no column to embed was named' USING ERRCODE = '22004',
            HINT = 'pass loading => ai.loading_column(''contents'')';
    END IF;
    IF loading ? 'column_name' AND chunking ? 'chunk_column' AND loading->>'column_name' <> chunking->>'chunk_column' THEN
        RAISE EXCEPTION 'loading names column % but chunking names column %',
            loading->>'column_name', chunking->>'chunk_column' USING ERRCODE = '22023',
            HINT = 'name the column once, in loading => ai.loading_column(...)';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = source AND attname = column_name
                   AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" does not exist in %', column_name, qual_source USING ERRCODE = '42703',
            HINT = 'name an existing text column in ai.loading_column(...)';
    END IF;
    loading := coalesce(loading, ai.loading_column(column_name)) || jsonb_build_object('column_name', column_name);
    chunking := chunking - 'chunk_column';
    IF (chunking->>'implementation') IN ('recursive_character_text_splitter', 'character_text_splitter') AND (
        (chunking->>'chunk_size')::int < 1 OR (chunking->>'chunk_overlap')::int < 0
        OR (chunking->>'chunk_overlap')::int > (chunking->>'chunk_size')::int) THEN
        RAISE EXCEPTION 'chunk_overlap (%) must be between 0 and chunk_size (%), and chunk_size positive',
            chunking->>'chunk_overlap', chunking->>'chunk_size' USING ERRCODE = '22023',
            HINT = 'e.g. ai.chunking_recursive_character_text_splitter(800, 400)';
    END IF;

    -- Formatting: every $name of the template must be a source column.
    formatting := coalesce(formatting, ai.formatting_python_template());
    template := coalesce(formatting->>'template', '$chunk');
    SELECT array_agg(t) INTO missing FROM unnest(ai._template_columns(template)) t
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = source AND attname = t
                      AND attnum > 0 AND NOT attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'formatting template % refers to unknown column(s) %', quote_literal(template), missing
            USING ERRCODE = '42703', HINT = format('columns of %s can be used as $name; $chunk is the chunk', qual_source);
    END IF;
    formatting := formatting || jsonb_build_object('columns', to_jsonb(ai._template_columns(template)));

    indexing := coalesce(indexing, ai.indexing_default());
    scheduling := coalesce(scheduling, ai.scheduling_default());
    processing := ai.processing_default() || coalesce(processing, '{}');
    IF (processing->>'batch_size')::int < 1 OR (processing->>'max_attempts')::int < 1 THEN
        RAISE EXCEPTION 'processing batch_size and max_attempts must be positive' USING ERRCODE = '22023',
            HINT = 'e.g. ai.processing_default(batch_size => 50, max_attempts => 6)';
    END IF;
    IF scheduling->>'implementation' = 'cron' AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'scheduling_cron needs the pg_cron extension in this database' USING ERRCODE = '55000',
            HINT = 'CREATE EXTENSION pg_cron (in the database named by cron.database_name), or use scheduling => ai.scheduling_none() and `pgweave worker`';
    END IF;

    -- Names: destination is a view name (2024 form) or ai.destination_table(...)'s JSON.
    IF destination IS NOT NULL AND left(ltrim(destination), 1) = '{' THEN
        dest := destination::jsonb;
    ELSIF destination IS NOT NULL THEN
        dest := jsonb_build_object('destination', destination);
    END IF;
    view_schema := coalesce(view_schema, dest->>'view_schema', src_schema);
    view_name := coalesce(view_name, dest->>'view_name', dest->>'destination', src_table || '_embedding');
    target_schema := coalesce(target_schema, dest->>'target_schema', view_schema);
    target_table := coalesce(target_table, dest->>'target_table', view_name || '_store');
    vname := coalesce(name, view_name);

    IF EXISTS (SELECT 1 FROM ai.vectorizer v WHERE v.name = vname) THEN
        IF if_not_exists THEN
            RAISE NOTICE 'vectorizer "%" already exists, skipping', vname;
            RETURN (SELECT v.id FROM ai.vectorizer v WHERE v.name = vname);
        END IF;
        RAISE EXCEPTION 'vectorizer "%" already exists', vname USING ERRCODE = '42710',
            HINT = 'pass if_not_exists => true, another name => ..., or drop it with ai.drop_vectorizer(...)';
    END IF;
    FOREACH r IN ARRAY ARRAY[view_name, target_table] LOOP
        IF to_regclass(ai._qualified(CASE WHEN r = view_name THEN view_schema ELSE target_schema END, r)) IS NOT NULL THEN
            RAISE EXCEPTION 'relation %.% already exists', CASE WHEN r = view_name THEN view_schema ELSE target_schema END, r
                USING ERRCODE = '42P07', HINT = 'choose another destination => ..., or drop that relation';
        END IF;
    END LOOP;

    vid := nextval(pg_get_serial_sequence('ai.vectorizer', 'id'));
    queue_schema := coalesce(queue_schema, 'ai');
    queue_table := coalesce(queue_table, '_vectorizer_q_' || vid);
    qual_store := ai._qualified(target_schema, target_table);
    qual_view := ai._qualified(view_schema, view_name);
    qual_queue := ai._qualified(queue_schema, queue_table);
    qual_failed := ai._qualified(queue_schema, '_vectorizer_q_failed_' || vid);
    trigger_fn := ai._qualified('ai', '_vectorizer_src_trg_' || vid);

    -- Store: one row per chunk, keyed by the source key and the chunk's position.
    EXECUTE format($$
        CREATE TABLE %s (
            embedding_uuid uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
            %s,
            chunk_seq int NOT NULL,
            chunk text NOT NULL,
            embedding %s(%s) NOT NULL,
            embedded_md5 text NOT NULL,
            UNIQUE (%s, chunk_seq)
        )$$, qual_store, ai._pk_columns(pk, true), ai._vector_type(), dims, ai._pk_list(pk));

    -- View: chunks beside their source rows. security_invoker: readers need rights on the
    -- source too, and its row-level security applies.
    SELECT string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum) INTO view_columns
    FROM pg_attribute a WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname NOT IN ('embedding_uuid', 'chunk_seq', 'chunk', 'embedding');
    EXECUTE format($$
        CREATE VIEW %s WITH (security_invoker = true) AS
        SELECT t.embedding_uuid, t.chunk_seq, t.chunk, t.embedding, %s
        FROM %s t JOIN %s s ON %s$$,
        qual_view, view_columns, qual_store, qual_source, ai._pk_join(pk, 't', 's'));

    -- Queues: work items (a key to re-read) and items parked after max_attempts.
    EXECUTE format($$
        CREATE TABLE %s (
            _id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            %s,
            _queued_at timestamptz NOT NULL DEFAULT now(),
            _attempts int NOT NULL DEFAULT 0,
            _retry_after timestamptz,
            _last_error text
        )$$, qual_queue, ai._pk_columns(pk, false));
    EXECUTE format('CREATE INDEX ON %s (%s)', qual_queue, ai._pk_list(pk));
    EXECUTE format($$
        CREATE TABLE %s (
            _id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            %s,
            _failed_at timestamptz NOT NULL DEFAULT now(),
            _attempts int NOT NULL,
            _last_error text
        )$$, qual_failed, ai._pk_columns(pk, false));

    config := jsonb_build_object('version', ai.pgweave_version(), 'loading', loading, 'embedding', embedding,
        'chunking', chunking, 'formatting', formatting, 'indexing', indexing,
        'scheduling', scheduling, 'processing', processing);
    INSERT INTO ai.vectorizer (id, name, source_schema, source_table, source_pk, target_schema, target_table,
                               view_schema, view_name, queue_schema, queue_table, queue_failed_table,
                               trigger_name, config)
    VALUES (vid, vname, src_schema, src_table, pk, target_schema, target_table, view_schema, view_name,
            queue_schema, queue_table, '_vectorizer_q_failed_' || vid, '_vectorizer_src_trg_' || vid, config);
    INSERT INTO ai._vectorizer_progress (vectorizer_id) VALUES (vid);

    -- Triggers: a row's key goes to the queue when it appears, changes what is embedded, or
    -- goes away; a truncate empties the store (ai._write_trigger_function).
    PERFORM ai._write_trigger_function(vid);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()',
                   '_vectorizer_src_trg_' || vid, qual_source, trigger_fn);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                   '_vectorizer_src_trg_' || vid || '_truncate', qual_source, trigger_fn);

    -- grant_to: SELECT on the view, and on the store, which the view (security_invoker) reads
    -- with the reader's rights. No right on the source: a reader needs its own SELECT there,
    -- and the source's row-level security then holds for the store too (ai._protect_store).
    PERFORM ai._protect_store(vid);
    IF grant_to IS NOT NULL THEN
        FOREACH r IN ARRAY grant_to LOOP
            EXECUTE format('GRANT SELECT ON %s, %s TO %I', qual_store, qual_view, r);
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', view_schema, r);
        END LOOP;
    END IF;

    IF enqueue_existing THEN
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s', qual_queue, ai._pk_list(pk),
                       ai._pk_list(pk), qual_source);
        PERFORM pg_notify('ai_vectorizer', vid::text);
    END IF;

    IF scheduling->>'implementation' = 'cron' THEN
        PERFORM ai._schedule_vectorizer(vid);
    END IF;
    RETURN vid;
END
$func$;

-- Stores made before their policies existed get them on install (a no-op once they have them).
DO $$
DECLARE
    vid int;
BEGIN
    FOR vid IN SELECT v.id FROM ai.vectorizer v ORDER BY v.id LOOP
        PERFORM ai._protect_store(vid);
    END LOOP;
END
$$;
