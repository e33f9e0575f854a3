-- Re-applied on every install: a vectorizer's store (one row per chunk, keyed by the source
-- key and the chunk's position) and its view (chunks beside their source rows). The engine
-- (34_engine) writes the store; search (50_search) reads the view.

-- Create the store and the view with the caller's rights (CREATE on their schemas), owned by
-- the vectorizer's owner. Returns (store, view) oids.
CREATE OR REPLACE FUNCTION ai._create_store_and_view(source regclass, owner name, pk jsonb, dims int,
                                                     store text, view text,
                                                     OUT store_relid oid, OUT view_relid oid)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format($q$
        CREATE TABLE %s (
            embedding_uuid uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid() PRIMARY KEY,
            %s,
            chunk_seq int NOT NULL,
            chunk text NOT NULL,
            embedding %s(%s) NOT NULL,
            embedded_md5 text NOT NULL,
            UNIQUE (%s, chunk_seq)
        ) WITH (toast_tuple_target = 8160)$q$, store, ai._pk_columns(pk, true), ai._vector_type(), dims, ai._pk_list(pk));
    store_relid := store::regclass;

    EXECUTE format('CREATE VIEW %s WITH (security_invoker = true) AS %s', view,
                   ai._view_query(source, pk, store_relid));
    view_relid := view::regclass;
    EXECUTE format('ALTER TABLE %s OWNER TO %I', store_relid::regclass, owner);
    EXECUTE format('ALTER VIEW %s OWNER TO %I', view_relid::regclass, owner);
END
$$;

-- The query of a vectorizer's view: each chunk beside its source row. security_invoker (set
-- by the caller): readers need rights on the source too, and its row-level security applies.
-- The embedding column has no dimensions of its own (::vector), so that a new generation of
-- other dimensions (38_alter) can take the view over with CREATE OR REPLACE VIEW: same view,
-- same row type for search's NULL::view (an index on the store still serves it).
CREATE OR REPLACE FUNCTION ai._view_query(source regclass, pk jsonb, store regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('SELECT t.embedding_uuid, t.chunk_seq, t.chunk, t.embedding::%s AS embedding, %s FROM %s t JOIN %s s ON %s',
                  ai._vector_type(),
                  string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum),
                  store, source, ai._pk_join(pk, 't', 's'))
    FROM pg_attribute a WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname NOT IN ('embedding_uuid', 'chunk_seq', 'chunk', 'embedding')
$$;

-- Row-level security of a vectorizer's store, so that the store is no way around the source's.
-- The view is security_invoker, so its readers need SELECT on the store itself (grant_to gives
-- it), and the store holds the text of every source row. Two policies, always present:
--   pgweave_writers: a role that may write the store (INSERT, UPDATE or DELETE; the engine's
--     role) sees and changes all of it, so chunks of rows it cannot see are still replaced
--     and deleted;
--   pgweave_source_rows: any other role sees the chunks of the source rows it can see. The
--     EXISTS runs with the caller's rights, so the source's own grants and policies decide,
--     and a reader who may not read an embedded column there (a column grant without it)
--     reads no chunk here. (OFFSET 0: one index probe per chunk read, not a hash of the whole
--     source per query.)
-- Row-level security on the store is always on: the store's owner, superusers and BYPASSRLS
-- roles are never subject to it. For a role subject to it, a full-text match on the store
-- cannot use its GIN index (@@ is not leakproof, so it may not run before the policies).
-- SECURITY DEFINER so that the follow triggers may run it for any ALTER TABLE; it acts only
-- on a store owned by the vectorizer's owner.
CREATE OR REPLACE FUNCTION ai._protect_store(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    store regclass := v.target_relid::regclass;
    probe text;
BEGIN
    IF NOT ai._owned_by(v.target_relid, v.owner) OR NOT ai._owned_by(v.source_relid, v.owner) THEN
        RETURN;   -- a half-dropped vectorizer, or a row that names what its owner does not own
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = store AND p.polname = 'pgweave_writers') THEN
        EXECUTE format($p$CREATE POLICY pgweave_writers ON %s FOR ALL
            USING ((SELECT pg_catalog.has_table_privilege(%s::pg_catalog.oid, 'INSERT, UPDATE, DELETE')))
            WITH CHECK (true)$p$, store, store::oid);
    END IF;
    -- The source columns the store's text comes from: a reader without SELECT on one of them
    -- there reads no chunk here (checked once per query, without an error).
    SELECT string_agg(format('(SELECT pg_catalog.has_column_privilege(%s::pg_catalog.oid, %L, ''SELECT''))',
                             v.source_relid, c), ' AND ') INTO probe
    FROM unnest(ai._embedded_columns(v.config)) c
    WHERE EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = v.source_relid AND a.attname = c
                  AND a.attnum > 0 AND NOT a.attisdropped);
    -- Written anew each time: the embedded columns' names may have changed (37_follow).
    IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = store AND p.polname = 'pgweave_source_rows') THEN
        EXECUTE format('DROP POLICY pgweave_source_rows ON %s', store);
    END IF;
    -- The store is referred to by its bare name: that is how a policy names its own table.
    EXECUTE format($p$CREATE POLICY pgweave_source_rows ON %s FOR SELECT
            USING (%s AND EXISTS (SELECT 1 FROM %s pgweave_source WHERE %s OFFSET 0))$p$,
            store, coalesce(probe, 'true'), v.source_relid::regclass,
            ai._pk_join(v.source_pk, 'pgweave_source', quote_ident(v.target_table)));
    IF NOT (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = store) THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', store);
    END IF;
END
$$;
