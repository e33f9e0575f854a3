-- Re-applied on every install: changing a vectorizer without downtime.
--
-- ai.alter_vectorizer changes in place what embeds nothing anew (processing, scheduling,
-- indexing, grants, name). A change of what is embedded (loading, embedding, chunking,
-- formatting), and ai.reembed, builds a NEW GENERATION beside the live vectorizer: an ordinary
-- vectorizer on the same source with its own store, preview view (<view>_next), queue and
-- trigger, marked in the catalog as generation_of the live one. The scheduler (or CALL
-- ai.execute_vectorizer, or a worker) processes it like any other, while search keeps
-- answering from the live view. Once its queue is empty, ai._take_over swaps it in, in one
-- transaction: the live view reads the new store (same view, same row type), the new store
-- takes the old store's name and grants, the old generation goes. An unchanged chunk (same
-- formatted text, same embedding model) takes its embedding from the live store (the engine's
-- reuse_store), unless the generation was started by ai.reembed.
-- Kept stores: a drop that keeps the store stamps it (a comment) with its source and model;
-- ai.create_vectorizer adopts such a store when they match (ai._adopt_kept_store).

-- What decides a chunk's vector besides its text: two configs with the same identity embed
-- the same text to the same vector.
CREATE OR REPLACE FUNCTION ai._embedding_identity(embedding jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'implementation', embedding->'implementation', 'model', embedding->'model',
        'dimensions', (embedding->>'dimensions')::int, 'base_url', embedding->'base_url',
        'options', embedding->'options'))
$$;

-- Give the grants one relation has (but its owner's) on another.
CREATE OR REPLACE FUNCTION ai._copy_grants(from_relid oid, to_relid oid) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = from_relid AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON %s TO %s', g.privilege_type, to_relid::regclass,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.grantee::regrole::text) END);
    END LOOP;
END
$$;

-- The generation being built for a vectorizer (NULL when none).
CREATE OR REPLACE FUNCTION ai._next_generation(vectorizer_id int) RETURNS int
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT g.id FROM ai.vectorizer g WHERE g.generation_of = vectorizer_id $$;

-- Start building a new generation of a live vectorizer with this config (reuse: may take
-- unchanged chunks' embeddings from the live store). Returns its id.
CREATE OR REPLACE FUNCTION ai._start_generation(live ai.vectorizer, config jsonb, reuse boolean) RETURNS int
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gid int;
    building int := ai._next_generation(live.id);
BEGIN
    IF building IS NOT NULL THEN
        RAISE EXCEPTION 'vectorizer "%" is already building a new generation (vectorizer %)', live.name, building
            USING ERRCODE = '55006',
                  HINT = format('wait until it takes over (see ai.vectorizer_status), or SELECT ai.cancel_alter(%L) and alter again', live.name);
    END IF;
    gid := ai.create_vectorizer(live.source_relid::regclass,
        name => live.name || ' (next)',
        view_schema => live.view_schema, view_name => left(live.view_name, 58) || '_next',
        target_schema => live.target_schema, target_table => left(live.target_table, 58) || '_next',
        queue_schema => live.queue_schema,
        loading => config->'loading', embedding => config->'embedding', chunking => config->'chunking',
        formatting => config->'formatting', indexing => config->'indexing',
        scheduling => config->'scheduling', processing => config->'processing');
    UPDATE ai.vectorizer SET generation_of = live.id, generation_reuse = reuse WHERE id = gid;
    PERFORM pg_notify('ai_vectorizer', gid::text);
    RETURN gid;
END
$$;

-- Change a vectorizer. Arguments left NULL stay as they are. processing, scheduling,
-- indexing, grant_to and new_name change in place; loading, embedding, chunking and formatting
-- build a new generation in the background that takes over once it has caught up (search
-- keeps answering from the live one until then; see ai.vectorizer_status, ai.cancel_alter).
-- Returns what it did, in words.
CREATE OR REPLACE FUNCTION ai.alter_vectorizer(
    vectorizer_id int,
    loading jsonb DEFAULT NULL,
    embedding jsonb DEFAULT NULL,
    chunking jsonb DEFAULT NULL,
    formatting jsonb DEFAULT NULL,
    indexing jsonb DEFAULT NULL,
    scheduling jsonb DEFAULT NULL,
    processing jsonb DEFAULT NULL,
    grant_to name[] DEFAULT NULL,
    new_name text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._managed_vectorizer(vectorizer_id, 'alter it');
    source regclass := v.source_relid::regclass;
    cfg jsonb := v.config;
    wanted jsonb;
    gid int;
    r name;
    done text[] := '{}';
BEGIN
    IF v.generation_of IS NOT NULL THEN
        RAISE EXCEPTION 'vectorizer "%" is a generation being built for vectorizer %', v.name, v.generation_of
            USING ERRCODE = '55000', HINT = 'alter the live vectorizer, or cancel this build with ai.cancel_alter(...)';
    END IF;
    -- What is embedded: validated like ai.create_vectorizer does.
    IF embedding IS NOT NULL THEN
        PERFORM ai._validate_embedding(embedding);
    END IF;
    wanted := cfg || jsonb_build_object(
        'loading', ai._validate_loading(source, coalesce(loading, cfg->'loading'), coalesce(chunking, cfg->'chunking')),
        'embedding', coalesce(embedding, cfg->'embedding'),
        'chunking', ai._validate_chunking(coalesce(chunking, cfg->'chunking')),
        'formatting', ai._validate_formatting(source, coalesce(formatting, cfg->'formatting')));
    -- What embeds nothing anew: in place, on the live vectorizer and on a generation being built.
    wanted := wanted || jsonb_build_object(
        'indexing', coalesce(indexing, cfg->'indexing'),
        'scheduling', coalesce(scheduling, cfg->'scheduling'),
        'processing', cfg->'processing' || coalesce(processing, '{}'));
    PERFORM ai._validate_indexing_processing(wanted->'indexing', wanted->'processing');
    IF new_name IS NOT NULL AND new_name <> v.name THEN
        IF EXISTS (SELECT 1 FROM ai.vectorizer z WHERE z.name = new_name) THEN
            RAISE EXCEPTION 'vectorizer "%" already exists', new_name USING ERRCODE = '42710',
                HINT = 'choose another new_name => ...';
        END IF;
        UPDATE ai.vectorizer SET name = new_name WHERE id = v.id;
        UPDATE ai.vectorizer SET name = new_name || ' (next)' WHERE generation_of = v.id;
        done := done || format('renamed to "%s"', new_name);
    END IF;
    IF wanted->'indexing' IS DISTINCT FROM cfg->'indexing' THEN
        -- The engine creates the index anew, with the new settings, when its queue is next empty.
        PERFORM ai._drop_vector_indexes(v.target_relid);
    END IF;
    FOR gid IN SELECT v.id UNION ALL SELECT g.id FROM ai.vectorizer g WHERE g.generation_of = v.id LOOP
        UPDATE ai.vectorizer z SET config = z.config || jsonb_build_object(
            'indexing', wanted->'indexing', 'scheduling', wanted->'scheduling', 'processing', wanted->'processing')
        WHERE z.id = gid AND z.config IS DISTINCT FROM z.config || jsonb_build_object(
            'indexing', wanted->'indexing', 'scheduling', wanted->'scheduling', 'processing', wanted->'processing');
        IF FOUND AND gid = v.id THEN
            done := done || 'processing, scheduling and indexing set'::text;
        END IF;
    END LOOP;
    FOREACH r IN ARRAY coalesce(grant_to, '{}') LOOP
        EXECUTE format('GRANT SELECT ON %s, %s TO %I', v.target_relid::regclass, v.view_relid::regclass, r);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v.view_schema, r);
        done := done || format('granted to %s', r);
    END LOOP;
    IF (wanted->'loading', wanted->'embedding', wanted->'chunking', wanted->'formatting')
       IS DISTINCT FROM (cfg->'loading', cfg->'embedding', cfg->'chunking', cfg->'formatting') THEN
        gid := ai._start_generation(ai._vectorizer(v.id), wanted - 'version',
            ai._embedding_identity(wanted->'embedding') = ai._embedding_identity(cfg->'embedding'));
        done := done || format('building a new generation (vectorizer %s); search answers from the live one until it takes over', gid);
    END IF;
    RETURN coalesce(nullif(array_to_string(done, '; '), ''), 'nothing to change');
END
$$;

CREATE OR REPLACE FUNCTION ai.alter_vectorizer(
    name text, loading jsonb DEFAULT NULL, embedding jsonb DEFAULT NULL, chunking jsonb DEFAULT NULL,
    formatting jsonb DEFAULT NULL, indexing jsonb DEFAULT NULL, scheduling jsonb DEFAULT NULL,
    processing jsonb DEFAULT NULL, grant_to name[] DEFAULT NULL, new_name text DEFAULT NULL
) RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.alter_vectorizer(ai._vectorizer_id(name), loading, embedding, chunking, formatting,
                                 indexing, scheduling, processing, grant_to, new_name) $$;

-- Drop the vector indexes of a store (the engine makes its HNSW index again when due).
CREATE OR REPLACE FUNCTION ai._drop_vector_indexes(store oid) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx regclass;
BEGIN
    FOR idx IN SELECT i.indexrelid::regclass FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_am am ON am.oid = c.relam
               WHERE i.indrelid = store AND am.amname IN ('hnsw', 'ivfflat') LOOP
        EXECUTE format('DROP INDEX %s', idx);
    END LOOP;
END
$$;

-- Embed every chunk of a vectorizer anew (the model behind its name changed, e.g. a new server
-- version), the zero-downtime way: a new generation with the same config that reuses nothing.
CREATE OR REPLACE FUNCTION ai.reembed(vectorizer_id int) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._managed_vectorizer(vectorizer_id, 'embed it anew');
BEGIN
    RETURN format('building a new generation (vectorizer %s); search answers from the live one until it takes over',
                  ai._start_generation(v, v.config - 'version', false));
END
$$;

CREATE OR REPLACE FUNCTION ai.reembed(name text) RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.reembed(ai._vectorizer_id(name)) $$;

-- Stop building a vectorizer's new generation: it is dropped with its store; the live one
-- stays as it is. Returns false when none was being built.
CREATE OR REPLACE FUNCTION ai.cancel_alter(vectorizer_id int) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._managed_vectorizer(vectorizer_id, 'cancel its change');
    gid int := CASE WHEN v.generation_of IS NOT NULL THEN v.id ELSE ai._next_generation(v.id) END;
BEGIN
    IF gid IS NULL THEN
        RETURN false;
    END IF;
    PERFORM ai.drop_vectorizer(gid, drop_all => true);
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION ai.cancel_alter(name text) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.cancel_alter(ai._vectorizer_id(name)) $$;

-- Let a vectorizer's new generation take over now, if it has caught up (the engine does this
-- by itself when the generation's queue is empty). Errors saying what is left otherwise.
CREATE OR REPLACE FUNCTION ai.finish_alter(vectorizer_id int) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._managed_vectorizer(vectorizer_id, 'finish its change');
    gid int := CASE WHEN v.generation_of IS NOT NULL THEN v.id ELSE ai._next_generation(v.id) END;
    live_name text := (SELECT z.name FROM ai.vectorizer z WHERE z.id = coalesce(v.generation_of, v.id));
BEGIN
    IF gid IS NULL THEN
        RAISE EXCEPTION 'vectorizer "%" is not building a new generation', v.name USING ERRCODE = '55000',
            HINT = 'start one with ai.alter_vectorizer(...) or ai.reembed(...)';
    END IF;
    IF NOT ai._take_over(gid) THEN
        RAISE EXCEPTION 'the new generation of vectorizer "%" has not caught up: % items queued, % failed',
            live_name, ai.vectorizer_queue_pending(gid, true), coalesce(ai._failed_items(gid), 0)
            USING ERRCODE = '55000',
                  HINT = format('CALL ai.execute_vectorizer(%L) processes it now (failed items: SELECT ai.retry_failed(%s)); or SELECT ai.cancel_alter(%L)',
                                live_name, gid, live_name);
    END IF;
    RETURN format('vectorizer "%s" now answers from its new generation', live_name);
END
$$;

CREATE OR REPLACE FUNCTION ai.finish_alter(name text) RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.finish_alter(ai._vectorizer_id(name)) $$;

-- The swap: a generation whose queue (and failed queue) is empty takes over its live
-- vectorizer, in the caller's transaction. True when it did; false when the vectorizer is not
-- a generation, has not caught up, or the locks were not free within a moment (tried again
-- later). Locks, in the engine's order: the old queue (a batch in flight finishes first), then
-- the view (with its store and the source: searches in flight finish first, new ones wait and
-- then read the new store). lock_timeout under deadlock_timeout: should a writer of the
-- source hold what the swap waits for, the swap gives way, never the writer.
-- SECURITY DEFINER (the installer): it re-points catalog columns owners may not write. Safe
-- to expose: only for members of the vectorizer's owner, only between two vectorizers of the
-- same owner and source, and only when the new one has caught up.
CREATE OR REPLACE FUNCTION ai._take_over(generation_id int) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g ai.vectorizer;
    live ai.vectorizer;
    view_rel regclass;
    old_view_oid oid;
    old_store_name name;
    timeout_was text := current_setting('lock_timeout');
    empty boolean;
BEGIN
    SELECT * INTO g FROM ai.vectorizer z WHERE z.id = generation_id;
    IF g.generation_of IS NULL THEN
        RETURN false;
    END IF;
    IF NOT pg_has_role(session_user, g.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'only the owner of vectorizer "%" (role %) or a superuser may let its new generation take over',
            g.name, g.owner USING ERRCODE = '42501';
    END IF;
    EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s) AND NOT EXISTS (SELECT 1 FROM %s)',
                   g.queue_relid::regclass, g.failed_relid::regclass) INTO empty;
    IF NOT empty THEN
        RETURN false;
    END IF;
    PERFORM set_config('lock_timeout', '800ms', true);
    BEGIN
        -- One swap at a time per vectorizer; then read the rows again (another may have swapped).
        PERFORM pg_advisory_xact_lock(hashtext('pgweave take over'), g.generation_of);
        SELECT * INTO g FROM ai.vectorizer z WHERE z.id = generation_id;
        SELECT * INTO live FROM ai.vectorizer z WHERE z.id = g.generation_of;
        IF live.id IS NULL THEN
            PERFORM set_config('lock_timeout', timeout_was, true);
            RETURN false;
        END IF;
        IF live.source_relid <> g.source_relid OR live.owner <> g.owner OR live.generation_of IS NOT NULL
           OR NOT (ai._owned_by(live.view_relid, g.owner) AND ai._owned_by(live.target_relid, g.owner)
                   AND ai._owned_by(g.target_relid, g.owner) AND ai._owned_by(g.view_relid, g.owner)
                   AND ai._owned_by(g.source_relid, g.owner)) THEN
            RAISE EXCEPTION 'vectorizer % cannot take over vectorizer %: they differ in source or owner', g.id, live.id
                USING ERRCODE = '55000', HINT = format('drop it: SELECT ai.drop_vectorizer(%s, drop_all => true)', g.id);
        END IF;
        view_rel := live.view_relid::regclass;
        IF ai._owned_by(live.queue_relid, live.owner) THEN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', live.queue_relid::regclass);
        END IF;
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', view_rel);
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s) AND NOT EXISTS (SELECT 1 FROM %s)',
                       g.queue_relid::regclass, g.failed_relid::regclass) INTO empty;
        IF NOT empty THEN
            PERFORM set_config('lock_timeout', timeout_was, true);
            RETURN false;
        END IF;
    EXCEPTION WHEN lock_not_available THEN
        PERFORM set_config('lock_timeout', timeout_was, true);
        RETURN false;
    END;
    PERFORM set_config('lock_timeout', timeout_was, true);

    -- The old generation goes (its store and view stay for the moment).
    UPDATE ai.vectorizer SET generation_of = NULL WHERE id = g.id;
    PERFORM ai.drop_vectorizer(live.id, drop_all => false);
    -- The live view reads the new store: same view, same row type. A view made before views
    -- had dimension-free embeddings cannot change its column's type in place: made anew.
    BEGIN
        EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_invoker = true) AS %s', view_rel,
                       ai._view_query(g.source_relid::regclass, g.source_pk, g.target_relid::regclass));
    EXCEPTION WHEN invalid_table_definition OR datatype_mismatch THEN
        old_view_oid := view_rel;
        EXECUTE format('ALTER VIEW %s RENAME TO %I', view_rel, left('_pgweave_old_' || live.view_name, 63));
        EXECUTE format('CREATE VIEW %s WITH (security_invoker = true) AS %s', ai._qualified(live.view_schema, live.view_name),
                       ai._view_query(g.source_relid::regclass, g.source_pk, g.target_relid::regclass));
        view_rel := ai._qualified(live.view_schema, live.view_name)::regclass;
        EXECUTE format('ALTER VIEW %s OWNER TO %I', view_rel, g.owner);
        PERFORM ai._copy_grants(old_view_oid, view_rel);
        EXECUTE format('DROP VIEW %s', old_view_oid::regclass);
    END;
    PERFORM ai._copy_grants(live.target_relid, g.target_relid);
    old_store_name := (SELECT c.relname FROM pg_class c WHERE c.oid = live.target_relid);
    EXECUTE format('DROP VIEW %s', g.view_relid::regclass);
    EXECUTE format('DROP TABLE %s', live.target_relid::regclass);
    EXECUTE format('ALTER TABLE %s RENAME TO %I', g.target_relid::regclass, old_store_name);
    UPDATE ai.vectorizer SET name = live.name, view_relid = view_rel, view_schema = live.view_schema,
                             view_name = live.view_name, target_table = old_store_name
    WHERE id = g.id;
    -- What names the store by its text is written again (the truncate in the trigger function).
    PERFORM ai._write_trigger_function(g.id);
    PERFORM ai._protect_store(g.id);
    RAISE NOTICE 'vectorizer "%" now answers from its new generation (vectorizer %)', live.name, g.id;
    RETURN true;
END
$$;

-- ===== kept stores =========================================================================

-- Stamp a store a drop keeps with what it holds, so that a create can adopt it.
CREATE OR REPLACE FUNCTION ai._stamp_kept_store(v ai.vectorizer) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF ai._owned_by(v.target_relid, v.owner) THEN
        EXECUTE format('COMMENT ON TABLE %s IS %L', v.target_relid::regclass,
            'pgweave kept store ' || jsonb_build_object(
                'source', v.source_relid, 'source_pk', v.source_pk, 'vectorizer', v.name,
                'embedding', ai._embedding_identity(v.config->'embedding'), 'kept_at', now())::text);
    END IF;
END
$$;

-- What a store's stamp says (NULL when it has none).
CREATE OR REPLACE FUNCTION ai._kept_store_stamp(store oid) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT substr(d, length('pgweave kept store ') + 1)::jsonb
    FROM obj_description(store, 'pg_class') d WHERE d LIKE 'pgweave kept store {%'
$$;

-- A create whose store already exists: adopt it when a drop kept it for this source and model
-- (its chunks are then reused, nothing is embedded again), or say exactly what to do. Returns
-- (store, view) oids, NULL when the store does not exist (the caller creates both).
CREATE OR REPLACE FUNCTION ai._adopt_kept_store(source regclass, owner name, pk jsonb, embedding jsonb,
                                                store text, view text,
                                                OUT store_relid oid, OUT view_relid oid)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stamp jsonb;
    why text;
    view_name text := view;
BEGIN
    store_relid := to_regclass(store);
    IF store_relid IS NULL THEN
        RETURN;
    END IF;
    stamp := ai._kept_store_stamp(store_relid);
    why := CASE
        WHEN EXISTS (SELECT 1 FROM ai.vectorizer z WHERE z.target_relid = store_relid)
            THEN 'it is the store of vectorizer "' || (SELECT z.name FROM ai.vectorizer z WHERE z.target_relid = store_relid) || '"'
        WHEN stamp IS NULL THEN 'it is not a store that ai.drop_vectorizer kept'
        WHEN NOT ai._owned_by(store_relid, owner) THEN format('it does not belong to %I, the owner of %s', owner, source)
        WHEN (stamp->>'source')::oid <> source OR stamp->'source_pk' <> pk
            THEN 'it was kept from another table (or one with another primary key)'
        WHEN stamp->'embedding' <> ai._embedding_identity(embedding)
            THEN format('it holds embeddings of %s, not of %s', stamp->'embedding', ai._embedding_identity(embedding))
        END;
    IF why IS NOT NULL THEN
        RAISE EXCEPTION 'relation % already exists, and cannot be adopted: %', store, why USING ERRCODE = '42P07',
            HINT = format('drop it (its embeddings are lost) with SELECT ai.drop_vectorizer_store(%L), or choose another destination => ...', view);
    END IF;
    -- The view: made again over the adopted store (same view when it is still there).
    view_relid := to_regclass(view);
    IF view_relid IS NULL THEN
        EXECUTE format('CREATE VIEW %s WITH (security_invoker = true) AS %s', view, ai._view_query(source, pk, store_relid::regclass));
        view_relid := view::regclass;
        EXECUTE format('ALTER VIEW %s OWNER TO %I', view_relid::regclass, owner);
    ELSE
        EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_invoker = true) AS %s', view, ai._view_query(source, pk, store_relid::regclass));
    END IF;
    EXECUTE format('COMMENT ON TABLE %s IS NULL', store_relid::regclass);
    RAISE NOTICE 'adopting the kept store % (chunks whose text is unchanged are not embedded again)', store;
END
$$;

-- Drop a store and view that ai.drop_vectorizer kept (named by the view, or the store when the
-- view is gone). Refused for a vectorizer's live store: drop the vectorizer with drop_all.
CREATE OR REPLACE FUNCTION ai.drop_vectorizer_store(view_or_store regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    store oid;
    used text;
BEGIN
    IF view_or_store IS NULL THEN
        RAISE EXCEPTION 'name the kept view or store' USING ERRCODE = '22004',
            HINT = 'e.g. SELECT ai.drop_vectorizer_store(''blog_embedding'')';
    END IF;
    SELECT z.name INTO used FROM ai.vectorizer z WHERE view_or_store IN (z.view_relid, z.target_relid);
    IF used IS NOT NULL THEN
        RAISE EXCEPTION '% belongs to vectorizer "%"', view_or_store, used USING ERRCODE = '55000',
            HINT = format('drop the vectorizer with its store: SELECT ai.drop_vectorizer(%L, drop_all => true)', used);
    END IF;
    -- The store a view reads: the relation it depends on that has a store's columns.
    SELECT d.refobjid INTO store FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
    WHERE r.ev_class = view_or_store AND d.refobjid <> view_or_store
      AND (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = d.refobjid AND NOT a.attisdropped
           AND a.attname IN ('embedding_uuid', 'chunk_seq', 'embedded_md5')) = 3
    LIMIT 1;
    IF store IS NULL AND ai._kept_store_stamp(view_or_store) IS NOT NULL THEN
        store := view_or_store;   -- the store itself was named
    ELSIF store IS NULL THEN
        RAISE EXCEPTION '% is not a view or store that a vectorizer kept', view_or_store USING ERRCODE = '42809',
            HINT = 'name the view that ai.drop_vectorizer left, e.g. blog_embedding';
    ELSE
        EXECUTE format('DROP VIEW %s', view_or_store);
    END IF;
    EXECUTE format('DROP TABLE %s', store::regclass);
END
$$;
