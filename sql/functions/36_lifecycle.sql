-- Re-applied on every install: creating and dropping vectorizers.
-- ai.create_vectorizer reads as a list: _validate_* calls, then _create_* calls (32_queue,
-- 33_store, 31_trigger, 34_engine), each a named function a reader can open on its own.
-- A vectorizer belongs to its source table's owner; the caller must be a member of that role
-- (or a superuser). Objects in the caller's schemas are created with the caller's rights;
-- those in schema ai through the installer's functions, which check what they are asked.

-- The source: an ordinary or partitioned, permanent table the caller may manage. Returns its owner.
CREATE OR REPLACE FUNCTION ai._validate_source(source regclass) RETURNS name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c pg_class;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'source must not be NULL' USING ERRCODE = '22004',
            HINT = 'pass the table, e.g. ai.create_vectorizer(''blog''::regclass, ...)';
    END IF;
    SELECT * INTO c FROM pg_class WHERE oid = source;
    IF c.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', source USING ERRCODE = '42809',
            HINT = 'vectorizers follow ordinary (or partitioned) tables, not views or other relations';
    END IF;
    IF c.relpersistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table', source USING ERRCODE = '42809',
            HINT = 'vectorizers follow permanent tables; a temporary one ends with its session';
    END IF;
    IF c.relispartition THEN
        RAISE EXCEPTION '% is a partition', source USING ERRCODE = '42809',
            HINT = format('create the vectorizer on its partitioned table, %s', (SELECT i.inhparent::regclass FROM pg_inherits i WHERE i.inhrelid = source));
    END IF;
    IF NOT pg_has_role(current_user, c.relowner, 'MEMBER') THEN
        RAISE EXCEPTION 'only the owner of table % (role %) or a superuser may create a vectorizer on it',
            source, c.relowner::regrole USING ERRCODE = '42501',
            HINT = format('ask the owner, or a superuser, to run it; or GRANT %s TO %I', c.relowner::regrole, current_user);
    END IF;
    RETURN (SELECT r.rolname FROM pg_roles r WHERE r.oid = c.relowner);
END
$$;

-- The source's primary key, in base types (ai._key_columns); its columns may not take the
-- names of the store's and queues' own columns.
CREATE OR REPLACE FUNCTION ai._validate_key(source regclass) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pk jsonb := ai._key_columns(source);
BEGIN
    IF pk IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key', source USING ERRCODE = '42P16',
            HINT = format('vectorizers key each chunk by the row''s primary key: ALTER TABLE %s ADD PRIMARY KEY (...)', source);
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(pk) k WHERE ai._reserved_column((k->>'attname')::name)) THEN
        RAISE EXCEPTION 'a primary key column of % is named like a store or queue column', source
            USING ERRCODE = '42701',
            HINT = 'primary key columns may not be named embedding_uuid, chunk_seq, chunk, embedding, embedded_md5, or start with _';
    END IF;
    RETURN pk;
END
$$;

-- Embedding: an implementation pgweave knows, a model, and dimensions pgvector can store.
CREATE OR REPLACE FUNCTION ai._validate_embedding(embedding jsonb) RETURNS int
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dims int;
BEGIN
    IF embedding IS NULL OR NOT embedding ? 'implementation' THEN
        RAISE EXCEPTION 'embedding is required' USING ERRCODE = '22004',
            HINT = 'e.g. embedding => ai.embedding_ollama(''all-minilm'', 384)';
    END IF;
    IF embedding->>'implementation' NOT IN ('ollama', 'openai') THEN
        RAISE EXCEPTION 'unknown embedding implementation %', quote_literal(embedding->>'implementation')
            USING ERRCODE = '22023', HINT = 'use ai.embedding_ollama(...) or ai.embedding_openai(...)';
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
    RETURN dims;
END
$$;

-- Loading: the column to embed, named by loading (current form) or chunking (2024 form).
-- Returns the loading config with column_name set.
CREATE OR REPLACE FUNCTION ai._validate_loading(source regclass, loading jsonb, chunking jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    column_name name := coalesce(loading->>'column_name', chunking->>'chunk_column');
BEGIN
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
        RAISE EXCEPTION 'column "%" does not exist in %', column_name, source USING ERRCODE = '42703',
            HINT = 'name an existing text column in ai.loading_column(...)';
    END IF;
    RETURN coalesce(loading, ai.loading_column(column_name)) || jsonb_build_object('column_name', column_name);
END
$$;

-- Chunking: sizes that make sense, and bounded work.
CREATE OR REPLACE FUNCTION ai._validate_chunking(chunking jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    chunking := chunking - 'chunk_column';
    IF (chunking->>'implementation') NOT IN ('recursive_character_text_splitter', 'character_text_splitter', 'none') THEN
        RAISE EXCEPTION 'unknown chunking implementation %', quote_literal(chunking->>'implementation')
            USING ERRCODE = '22023',
            HINT = 'use ai.chunking_recursive_character_text_splitter(...), ai.chunking_character_text_splitter(...) or ai.chunking_none()';
    END IF;
    IF (chunking->>'implementation') IN ('recursive_character_text_splitter', 'character_text_splitter') AND (
        (chunking->>'chunk_size')::int < 1 OR (chunking->>'chunk_overlap')::int < 0
        OR (chunking->>'chunk_overlap')::int > (chunking->>'chunk_size')::int) THEN
        RAISE EXCEPTION 'chunk_overlap (%) must be between 0 and chunk_size (%), and chunk_size positive',
            chunking->>'chunk_overlap', chunking->>'chunk_size' USING ERRCODE = '22023',
            HINT = 'e.g. ai.chunking_recursive_character_text_splitter(800, 400)';
    END IF;
    PERFORM ai._check_chunking(chunking);   -- bounded work per row (20_vectorizer_config.sql)
    RETURN chunking;
END
$$;

-- Formatting: every $name of the template must be a source column. Returns the config with
-- the template's columns listed (the engine reads them).
CREATE OR REPLACE FUNCTION ai._validate_formatting(source regclass, formatting jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    template text := coalesce(formatting->>'template', '$chunk');
    missing name[];
BEGIN
    SELECT array_agg(t) INTO missing FROM unnest(ai._template_columns(template)) t
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = source AND attname = t
                      AND attnum > 0 AND NOT attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'formatting template % refers to unknown column(s) %', quote_literal(template), missing
            USING ERRCODE = '42703', HINT = format('columns of %s can be used as $name; $chunk is the chunk', source);
    END IF;
    RETURN formatting || jsonb_build_object('columns', to_jsonb(ai._template_columns(template)));
END
$$;

-- Indexing and processing: known index methods and opclasses, positive batch sizes.
CREATE OR REPLACE FUNCTION ai._validate_indexing_processing(indexing jsonb, processing jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF indexing->>'implementation' NOT IN ('hnsw', 'none') THEN
        RAISE EXCEPTION 'unknown indexing implementation %', quote_literal(indexing->>'implementation')
            USING ERRCODE = '22023', HINT = 'use ai.indexing_hnsw(...) or ai.indexing_none()';
    END IF;
    IF indexing->>'implementation' = 'hnsw' AND coalesce(indexing->>'opclass', 'vector_cosine_ops')
        NOT IN ('vector_cosine_ops', 'vector_l2_ops', 'vector_ip_ops', 'vector_l1_ops') THEN
        RAISE EXCEPTION 'unknown HNSW opclass %', quote_literal(indexing->>'opclass') USING ERRCODE = '22023',
            HINT = 'use vector_cosine_ops, vector_l2_ops, vector_ip_ops or vector_l1_ops';
    END IF;
    IF (processing->>'batch_size')::int < 1 OR (processing->>'max_attempts')::int < 1
       OR (processing->>'concurrency')::int NOT BETWEEN 1 AND 64
       OR (processing->>'embedding_batch_size')::int < 1 THEN
        RAISE EXCEPTION 'processing batch_size, embedding_batch_size and max_attempts must be positive, concurrency between 1 and 64'
            USING ERRCODE = '22023', HINT = 'e.g. ai.processing_default(batch_size => 50, max_attempts => 6)';
    END IF;
END
$$;

-- The store's and view's names: from destination (a view name, 2024 form, or
-- ai.destination_table(...)'s JSON) and the explicit arguments.
CREATE OR REPLACE FUNCTION ai._destination_names(src_schema name, src_table name, destination text,
    INOUT view_schema text, INOUT view_name text, INOUT target_schema text, INOUT target_table text)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dest jsonb := '{}';
BEGIN
    IF destination IS NOT NULL AND left(ltrim(destination), 1) = '{' THEN
        dest := destination::jsonb;
    ELSIF destination IS NOT NULL THEN
        dest := jsonb_build_object('destination', destination);
    END IF;
    view_schema := coalesce(view_schema, dest->>'view_schema', src_schema);
    view_name := coalesce(view_name, nullif(dest->>'view_name', ''), dest->>'destination', src_table || '_embedding');
    target_schema := coalesce(target_schema, dest->>'target_schema', view_schema);
    target_table := coalesce(target_table, dest->>'target_table', view_name || '_store');
END
$$;

-- The store's and view's names are usable: not empty, within 63 bytes (the store is named
-- <view>_store), in a schema that exists, and not taken.
CREATE OR REPLACE FUNCTION ai._validate_names(destination text, view_schema text, view_name text,
                                              target_schema text, target_table text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    asked text := CASE WHEN left(ltrim(coalesce(destination, '')), 1) = '{' THEN NULL ELSE destination END;
BEGIN
    IF asked = '' OR view_name = '' OR target_table = '' THEN
        RAISE EXCEPTION 'the destination name must not be empty' USING ERRCODE = '42602',
            HINT = 'pass destination => ''blog_embedding'' (a view name), or leave it out for <table>_embedding';
    END IF;
    FOR r IN SELECT * FROM (VALUES ('view', view_schema, view_name), ('store', target_schema, target_table)) t(kind, sch, rel)
    LOOP
        IF octet_length(r.rel) > 63 OR (r.kind = 'view' AND octet_length(asked) > 63) THEN
            RAISE EXCEPTION 'the % name % is longer than PostgreSQL''s 63 bytes', r.kind, quote_ident(r.rel)
                USING ERRCODE = '42622',
                HINT = 'pass a shorter destination => ...; the store is named <view>_store, so keep a view name to 57 bytes';
        END IF;
        IF to_regnamespace(quote_ident(r.sch)) IS NULL THEN
            RAISE EXCEPTION 'schema % does not exist', quote_ident(r.sch) USING ERRCODE = '3F000',
                HINT = format('CREATE SCHEMA %I, or choose another destination', r.sch);
        END IF;
        IF to_regclass(ai._qualified(r.sch, r.rel)) IS NOT NULL THEN
            RAISE EXCEPTION 'relation %.% already exists', quote_ident(r.sch), quote_ident(r.rel)
                USING ERRCODE = '42P07', HINT = 'choose another destination => ..., or drop that relation';
        END IF;
    END LOOP;
END
$$;

-- Declare a vectorizer on a table: from now on its rows' chunks and embeddings follow every
-- insert, update, delete and truncate. Returns the vectorizer id.
CREATE OR REPLACE FUNCTION ai.create_vectorizer(
    source regclass,
    name text DEFAULT NULL,
    destination text DEFAULT NULL,
    loading jsonb DEFAULT NULL,
    parsing jsonb DEFAULT NULL,
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
    owner name := ai._validate_source(source);
    src_schema name;
    src_table name;
    pk jsonb := ai._validate_key(source);
    dims int := ai._validate_embedding(embedding);
    vid int;
    vname text;
    rels record;
    store_relid oid;
    view_relid oid;
    config jsonb;
    r name;
    who text;
BEGIN
    SELECT n.nspname, c.relname INTO src_schema, src_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = source;
    chunking := coalesce(chunking, ai.chunking_recursive_character_text_splitter());
    loading := ai._validate_loading(source, loading, chunking);
    parsing := ai._validate_parsing(source, loading, parsing);
    chunking := ai._validate_chunking(chunking);
    formatting := ai._validate_formatting(source, coalesce(formatting, ai.formatting_python_template()));
    indexing := coalesce(indexing, ai.indexing_default());
    scheduling := coalesce(scheduling, ai.scheduling_default());
    processing := ai.processing_default() || coalesce(processing, '{}');
    PERFORM ai._validate_indexing_processing(indexing, processing);

    SELECT * INTO rels FROM ai._destination_names(src_schema, src_table, destination,
                                                  view_schema, view_name, target_schema, target_table);
    vname := coalesce(name, rels.view_name);
    IF EXISTS (SELECT 1 FROM ai.vectorizer v WHERE v.name = vname) THEN
        IF if_not_exists THEN
            RAISE NOTICE 'vectorizer "%" already exists, skipping', vname;
            RETURN (SELECT v.id FROM ai.vectorizer v WHERE v.name = vname);
        END IF;
        RAISE EXCEPTION 'vectorizer "%" already exists', vname USING ERRCODE = '42710',
            HINT = 'pass if_not_exists => true, another name => ..., or drop it with ai.drop_vectorizer(...)';
    END IF;
    -- A store that a drop kept is adopted when it matches (38_alter); else the names must be free.
    SELECT a.store_relid, a.view_relid INTO store_relid, view_relid
    FROM ai._adopt_kept_store(source, owner, pk, embedding, ai._qualified(rels.target_schema, rels.target_table),
                              ai._qualified(rels.view_schema, rels.view_name)) a;
    IF store_relid IS NULL THEN
        PERFORM ai._validate_names(destination, rels.view_schema, rels.view_name, rels.target_schema, rels.target_table);
    END IF;
    who := ai._embedding_model_warning(embedding);   -- the server is up and lacks the model
    IF who IS NOT NULL THEN
        RAISE WARNING '%', who;
    END IF;

    vid := nextval(pg_get_serial_sequence('ai.vectorizer', 'id'));
    queue_schema := coalesce(queue_schema, 'ai');
    queue_table := CASE WHEN queue_schema = 'ai' THEN '_vectorizer_q_' || vid
                        ELSE coalesce(queue_table, '_vectorizer_q_' || vid) END;
    config := jsonb_build_object('version', ai.pgweave_version(), 'loading', loading, 'parsing', parsing,
        'embedding', embedding,
        'chunking', chunking, 'formatting', formatting, 'indexing', indexing,
        'scheduling', scheduling, 'processing', processing);

    IF store_relid IS NULL THEN
        SELECT s.store_relid, s.view_relid INTO store_relid, view_relid
        FROM ai._create_store_and_view(source, owner, pk, dims, ai._qualified(rels.target_schema, rels.target_table),
                                       ai._qualified(rels.view_schema, rels.view_name)) s;
    END IF;
    INSERT INTO ai.vectorizer (id, name, source_schema, source_table, source_pk, target_schema, target_table,
                               view_schema, view_name, queue_schema, queue_table, queue_failed_table,
                               trigger_name, config, owner, source_relid, target_relid, view_relid)
    VALUES (vid, vname, src_schema, src_table, pk, rels.target_schema, rels.target_table, rels.view_schema,
            rels.view_name, queue_schema, queue_table, '_vectorizer_q_failed_' || vid,
            '_vectorizer_src_trg_' || vid, config, owner, source, store_relid, view_relid);
    INSERT INTO ai._vectorizer_progress (vectorizer_id) VALUES (vid);
    PERFORM ai._create_queues(vid);
    PERFORM ai._write_engine_function(vid);
    PERFORM ai._create_triggers(vid);
    PERFORM ai._protect_store(vid);

    -- grant_to: SELECT on the view, and on the store, which the view (security_invoker) reads
    -- with the reader's rights. No right on the source: a reader needs its own SELECT there,
    -- and the store's policies hold the source's rights for the store too (ai._protect_store).
    FOREACH r IN ARRAY coalesce(grant_to, '{}') LOOP
        EXECUTE format('GRANT SELECT ON %s, %s TO %I', store_relid::regclass, view_relid::regclass, r);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', rels.view_schema, r);
    END LOOP;

    IF enqueue_existing THEN
        PERFORM ai._engine_op(vid, 'enqueue_all');
        UPDATE ai._vectorizer_progress SET backlog_started_at = now() WHERE vectorizer_id = vid;
        PERFORM pg_notify('ai_vectorizer', vid::text);
    END IF;

    who := ai._processed_by(vid);
    IF who LIKE 'nobody%' THEN
        RAISE NOTICE 'vectorizer "%" is created, but nothing will process it: %', vname, substr(who, 10);
    END IF;
    RETURN vid;
END
$func$;

-- Run one engine operation (engine.run_op) on a vectorizer, with its owner's rights.
CREATE OR REPLACE FUNCTION ai._engine_op(vectorizer_id int, op text, args text DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result text;
BEGIN
    PERFORM ai._python_ready();
    EXECUTE format('SELECT %s($1, $2)', ai._qualified('ai', '_vectorizer_engine_' || vectorizer_id))
        INTO result USING op, args;
    RETURN result;
END
$$;

-- Remove a vectorizer: its triggers, functions and queues; with drop_all also its store and
-- view (kept, they are stamped for ai.create_vectorizer to adopt). Its owner's members and superusers may; the objects are dropped with the caller's
-- rights (they belong to the owner).
CREATE OR REPLACE FUNCTION ai.drop_vectorizer(vectorizer_id int, drop_all boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._managed_vectorizer(vectorizer_id, 'drop it');
BEGIN
    -- A new generation being built for it goes first, with its store (38_alter).
    PERFORM ai.drop_vectorizer(g.id, drop_all => true) FROM ai.vectorizer g WHERE g.generation_of = v.id;
    -- The queue first, as the engine takes it: a batch in flight finishes before the drop goes
    -- on, and none starts (the reverse order deadlocks with the batch's progress update).
    IF ai._owned_by(v.queue_relid, v.owner) THEN
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v.queue_relid::regclass);
    END IF;
    -- The catalog row goes next: the drop event trigger refuses to drop a queue it still names.
    DELETE FROM ai._vectorizer_errors WHERE ai._vectorizer_errors.vectorizer_id = v.id;
    DELETE FROM ai.vectorizer WHERE id = v.id;
    IF ai._owned_by(v.source_relid, v.owner) THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v.trigger_name, v.source_relid::regclass);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v.trigger_name || '_truncate', v.source_relid::regclass);
    END IF;
    EXECUTE format('DROP FUNCTION IF EXISTS %s() CASCADE', ai._qualified('ai', v.trigger_name));
    EXECUTE format('DROP FUNCTION IF EXISTS %s(text, text)', ai._qualified('ai', '_vectorizer_engine_' || v.id));
    IF ai._owned_by(v.queue_relid, v.owner) THEN
        EXECUTE format('DROP TABLE IF EXISTS %s', v.queue_relid::regclass);
    END IF;
    IF ai._owned_by(v.failed_relid, v.owner) THEN
        EXECUTE format('DROP TABLE IF EXISTS %s', v.failed_relid::regclass);
    END IF;
    IF NOT drop_all THEN
        PERFORM ai._stamp_kept_store(v);   -- so that a create can adopt it (38_alter)
    ELSE
        IF ai._owned_by(v.view_relid, v.owner) THEN
            EXECUTE format('DROP VIEW IF EXISTS %s', v.view_relid::regclass);
        END IF;
        IF ai._owned_by(v.target_relid, v.owner) THEN
            EXECUTE format('DROP TABLE IF EXISTS %s', v.target_relid::regclass);
        END IF;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION ai.drop_vectorizer(name text, drop_all boolean DEFAULT false) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.drop_vectorizer(ai._vectorizer_id(name), drop_all) $$;
