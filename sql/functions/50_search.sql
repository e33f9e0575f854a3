-- Re-applied on every install: search over a vectorizer's view, in one SQL call.
-- Row path: ... → store → view → search (this file) → the caller.
--
-- Every search function takes the vectorizer's view as a typed NULL, the way
-- jsonb_populate_record takes a row type:
--     SELECT s.rank, s.distance, (s.hit).title FROM ai.semantic_search(NULL::blog_embedding, 'q') s;
-- The argument both names the vectorizer and gives the result its column types: `hit` is a
-- row of the view (chunk, embedding_uuid, chunk_seq, embedding and every source column, each
-- with its own type), so filters, joins, ORDER BY and OFFSET on the results are plain SQL.
-- One function serves every vectorizer: nothing is generated per vectorizer that could go
-- stale when one is dropped or pgweave is upgraded.
--
-- Privileges: the search functions are SECURITY INVOKER and read the source only through the
-- view, which is security_invoker; so the caller's grants and the source's row-level security
-- decide which rows exist before anything is ranked, counted or limited. Like every ai
-- function they pin search_path (pg_catalog, pg_temp), so a where_clause names the caller's
-- own functions with their schema (where_clause => 'public.in_stock(v.id)'). Only the
-- query-embedding cache is reached as its owner (51_query_cache.sql). Searches create
-- nothing: the full-text index that makes text and hybrid search fast is the store owner's to
-- create (ai.create_text_index).
-- The statements are written here (ai._search_sql), next to the parameters each search
-- passes them, and so are the names, keys and lexemes they need (ai._search_parts); Python
-- (plpython/pgweave_db/search.py) writes only a filter's WHERE clause. The query's vector
-- comes from the cache in SQL (read by ai._search_parts), so a cached vector reaches the index
-- scan without being printed and parsed again.
--
-- Errors: no search entry point is written in Python; each Python function here is an
-- internal *_py function behind an entry point made by ai._python_entry_point
-- (00_python_loader.sql), which re-raises its errors without PL/Python's class prefix.
--
-- Parallel safety: the functions here that run Python (directly or through a search) are
-- PARALLEL UNSAFE, the default, for the reason given in 10_ollama.sql.

-- ===== the search statements =============================================================

-- Old names of this file's internals (before the statements moved here).
DROP FUNCTION IF EXISTS ai._search_statement(oid, text, jsonb, text, oid);
DROP FUNCTION IF EXISTS ai._search_statement_py(oid, text, jsonb, text, oid);
DROP FUNCTION IF EXISTS ai._ensure_text_index(int, regconfig);

-- The vectorizer whose view has this row type (or an error showing the call to write).
CREATE OR REPLACE FUNCTION ai._search_vectorizer(row_type oid) RETURNS ai.vectorizer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer;
BEGIN
    SELECT z.* INTO v FROM ai.vectorizer z
    JOIN pg_namespace n ON n.nspname = z.view_schema
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = z.view_name
    WHERE c.reltype = row_type;
    IF v.id IS NULL THEN
        RAISE EXCEPTION '% is not the view of a vectorizer', coalesce(row_type::regtype::text, 'NULL')
            USING ERRCODE = '42809',
                  HINT = 'pass the vectorizer''s view as a typed NULL, e.g. ai.semantic_search(' ||
                      coalesce((SELECT string_agg(format('NULL::%s', ai._qualified(z.view_schema, z.view_name)),
                                                  ' or ' ORDER BY z.name) FROM ai.vectorizer z),
                               'NULL::blog_embedding') || ', ''query'')';
    END IF;
    RETURN v;
END
$$;

-- The WHERE clause over the view (alias v) of a filter and a where_clause (Python:
-- search.predicate, which quotes the filter's columns and values).
CREATE OR REPLACE FUNCTION ai._search_predicate_py(view_oid oid, filter jsonb, where_clause text) RETURNS text
LANGUAGE plpython3u STABLE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].search.predicate(view_oid, filter, where_clause)
$python$;

SELECT ai._python_entry_point('ai._search_predicate_py(oid, jsonb, text)', '_search_predicate');

-- What a search statement needs (ai._search_sql): the view, vector type, distance operator and
-- store, quoted; the WHERE clause of filter and where_clause (true without them); when embed,
-- the query embedding's key in the query cache and the cached vector (NULL when not cached);
-- when language is given, the query's lexemes and the chunk's tsvector expression; and whether
-- nothing but dead rows can drop the index's candidates (unfiltered: no filter, no
-- where_clause, no row-level security on the source). Written in PL/pgSQL, Python only for a
-- filter, and in as few statements as it can: in a fresh transaction each costs a search
-- 15-30 us (a PL/Python call here cost a quarter of a millisecond).
--
-- The view is locked before the catalog is read, as a new generation's swap does
-- (38_alter.sql): a swap either finished before (the catalog and the view both show the new
-- generation) or waits for this search. The view is named by its row type (a view's row type
-- has its name), so no statement looks it up first; a type that is not a relation's, and a
-- view the caller may not lock, lock nothing (the lookup then says what is wrong).
CREATE OR REPLACE FUNCTION ai._search_parts(
    row_type oid, query text, filter jsonb, where_clause text, language oid, embed boolean,
    OUT vectorizer_id int, OUT view text, OUT vector_type text, OUT distance_op text, OUT predicate text,
    OUT store text, OUT cache_key text, OUT lexemes text[], OUT tsvector text, OUT unfiltered boolean,
    OUT query_vector real[])
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    view_oid oid;
    source_rls boolean;
BEGIN
    BEGIN
        EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', row_type::regtype);
    EXCEPTION WHEN insufficient_privilege OR undefined_table OR wrong_object_type OR syntax_error THEN
        NULL;   -- not a relation's row type (e.g. integer[]), or not the caller's to lock
    END;
    -- By the view's row type, else (view_relid no longer the view's, e.g. restored from a dump)
    -- by its name, or an error showing the call to write (ai._search_vectorizer).
    SELECT z.id, t.typrelid, ai._qualified(z.view_schema, z.view_name), ai._qualified(z.target_schema, z.target_table),
           x.vector_schema || '.vector',
           format('OPERATOR(%s.%s)', x.vector_schema, CASE z.config #>> '{indexing,opclass}'
               WHEN 'vector_l2_ops' THEN '<->' WHEN 'vector_ip_ops' THEN '<#>' WHEN 'vector_l1_ops' THEN '<+>'
               ELSE '<=>' END),
           (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = z.source_relid), k.key, ai._query_cache_read(k.key)
    INTO vectorizer_id, view_oid, view, store, vector_type, distance_op, source_rls, cache_key, query_vector
    FROM pg_type t
    CROSS JOIN LATERAL (SELECT v.* FROM ai.vectorizer v WHERE v.view_relid = t.typrelid
                        UNION ALL SELECT w.* FROM ai._search_vectorizer(t.oid) w
                        LIMIT 1) z
    CROSS JOIN LATERAL (SELECT quote_ident(n.nspname) AS vector_schema FROM pg_extension e
                        JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector') x
    -- OFFSET 0: evaluated once (pulled up, the key would be computed again for the read).
    CROSS JOIN LATERAL (SELECT CASE WHEN embed THEN ai._query_cache_key(z.config -> 'embedding', query) END AS key
                        OFFSET 0) k
    WHERE t.oid = row_type;
    predicate := CASE WHEN filter IS NULL AND coalesce(btrim(where_clause), '') = '' THEN 'true'
                      ELSE ai._search_predicate(view_oid, filter, where_clause) END;
    -- The store's own policy (33_store.sql) shows the chunks of the source rows the caller
    -- sees: it drops candidates only where the source's row-level security does, or for rows
    -- deleted and not yet removed, as the view's join does.
    unfiltered := predicate = 'true' AND NOT coalesce(source_rls, true);
    IF language IS NOT NULL THEN
        lexemes := tsvector_to_array(to_tsvector(language::regconfig, query));
        tsvector := format('pg_catalog.to_tsvector(%L::pg_catalog.regconfig, v.chunk)', language::regconfig::text);
    END IF;
END
$$;

-- The nearest chunks of a view and their whole rows, by the distance to query_vector (an SQL
-- expression of the vector), at most row_limit (an SQL expression): ai._search_sql's and
-- ai._search_prepared_sql's semantic statements read the view through this one query.
CREATE OR REPLACE FUNCTION ai._search_nearest(view text, vector_type text, distance_op text, predicate text,
                                              query_vector text, row_limit text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN format($q$
        SELECT v.embedding_uuid AS id, v.embedding %1$s %5$s::%2$s AS distance, ROW(v.*)::%3$s AS hit
        FROM %3$s v WHERE %4$s
        ORDER BY distance LIMIT %6$s$q$, distance_op, vector_type, view, predicate, query_vector, row_limit);
END
$$;

-- The statement ai.semantic_search prepares for an unfiltered scan of a cached query (see
-- there): its one parameter is the query's key in the cache ($1 text; the vector is read from
-- the cache in the statement, binary, once), k is written in (a generic plan of LIMIT $2 is
-- costed for a tenth of the table, so the plan cache would keep planning); it returns (rank,
-- distance, hit), and rows only when all k came back with a distance: should the entry have
-- left the cache since ai._search_parts read it, the vector is NULL, and pgvector's index scan
-- would return k arbitrary rows, each at a NULL distance.
CREATE OR REPLACE FUNCTION ai._search_prepared_sql(view text, vector_type text, distance_op text, k int)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN format($q$
    WITH top AS MATERIALIZED (%s)
    SELECT (pg_catalog.row_number() OVER (ORDER BY t.distance, t.id))::int, t.distance, t.hit
    FROM top t WHERE (SELECT pg_catalog.count(c.distance) FROM top c) OPERATOR(pg_catalog.>=) %s
    ORDER BY t.distance, t.id$q$,
        ai._search_nearest(view, vector_type, distance_op, 'true', '(SELECT ai._query_cache_read($1::pg_catalog.text))',
                           k::text), k);
END
$$;

-- Prepare ai.semantic_search's statement under this name for the rest of the session (again if
-- it is gone or its view was made anew); false, preparing nothing, when the session already
-- holds 64 of them (each different k or view is one; past that, searches plan as they go).
CREATE OR REPLACE FUNCTION ai._search_prepare(name text, statement text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_prepared_statements p WHERE p.name = _search_prepare.name) THEN
        EXECUTE format('DEALLOCATE %I', name);
    ELSIF (SELECT count(*) FROM pg_prepared_statements p WHERE p.name LIKE 'pgweave\_search\_%') >= 64 THEN
        RETURN false;
    END IF;
    EXECUTE format('PREPARE %I(pg_catalog.text) AS %s', name, statement);
    RETURN true;
END
$$;

-- The statement of a search of this kind over one view, with its parameters (EXECUTE … USING):
--   semantic kinds: $1 query_vector real[] (the query's embedding), $2 the rows wanted,
--      and for 'semantic_rest' $3 the chunks already returned (uuid[]) and $4 the distance of
--      the last of them (float8). They return (id, distance, hit), best first; the caller
--      numbers them (a window function over whole rows cost more than the numbering loop).
--   'text' and 'hybrid': $1 query_vector real[] (hybrid)   $2 k int (results)
--      $3 candidates int (each branch's top, hybrid; k for text search)
--      $4 lexemes text[] (the query's, in the search's language)
--      $5 vector_weight float8   $6 text_weight float8   $7 rrf_k int
--
-- Semantic: the nearest chunks and their whole rows, in one pass over the view: an index scan
-- stops after $2 rows, and without an index the planner builds the rows after its top-k sort,
-- so only $2 are ever built (a second join back to the view cost 0.5 ms of planning and
-- execution per call). Ties in distance are ordered by the chunk's id.
--   'semantic': without pgvector's iterative scans (see ai.semantic_search); the index's order
--      is the distance's, so only ties are sorted.
--   'semantic_iterative': with them; relaxed_order may return rows slightly out of order:
--      materialize, then sort.
--   'semantic_rest': the same, for the rows after those a 'semantic' statement returned: none
--      of those, none nearer than the last of them, so the ranks stay in order of distance.
-- ROW(v.*), not v: a source column named v would win over the whole-row reference.
--
-- Text: Okapi BM25 over the chunks the caller can see that contain any query lexeme (found
-- through the GIN index when the owner made one, ai.create_text_index): for each lexeme,
-- idf = ln(1 + (N - n + 0.5) / (n + 0.5)), N the store's rows (pg_class.reltuples) and n the
-- visible chunks containing it; tf its occurrences in the chunk; length normalisation by the
-- chunk's word count over the average of the matching chunks; k1 = 1.2, b = 0.75.
--
-- Hybrid: the vector branch's and the text branch's top candidates, fused by weighted
-- reciprocal rank fusion: score = $5 / ($7 + vector_rank) + $6 / ($7 + text_rank).
CREATE OR REPLACE FUNCTION ai._search_sql(kind text, view text, vector_type text, distance_op text,
                                          predicate text, store text, tsvector text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nearest text;
    bm25 text;
BEGIN
    IF kind IN ('semantic', 'semantic_iterative', 'semantic_rest') THEN
        nearest := ai._search_nearest(view, vector_type, distance_op, predicate || CASE kind
            WHEN 'semantic_rest' THEN format(
                ' AND v.embedding_uuid OPERATOR(pg_catalog.<>) ALL ($3::pg_catalog.uuid[])'
                ' AND v.embedding %s $1::%s OPERATOR(pg_catalog.>=) $4::pg_catalog.float8', distance_op, vector_type)
            ELSE '' END, '$1', '$2');
        RETURN format(CASE kind WHEN 'semantic' THEN $q$
    SELECT t.id, t.distance, t.hit FROM (%s) t
    ORDER BY t.distance, t.id$q$ ELSE $q$
    WITH top AS MATERIALIZED (%s)
    SELECT t.id, t.distance, t.hit FROM top t
    ORDER BY t.distance, t.id$q$ END, nearest);
    END IF;
    bm25 := format($q$
    hits AS MATERIALIZED (
        SELECT v.embedding_uuid AS id, %1$s AS tsv FROM %2$s v
        WHERE %1$s OPERATOR(pg_catalog.@@) (
                  SELECT pg_catalog.string_agg('''' || pg_catalog.replace(pg_catalog.replace(l, '\', '\\'),
                                                                          '''', '''''') || '''', ' | ')
                  FROM pg_catalog.unnest($4::text[]) l)::pg_catalog.tsquery
          AND %3$s),
    terms AS MATERIALIZED (
        SELECT h.id, d.lexeme, d.tf, d.dl FROM hits h CROSS JOIN LATERAL (
            SELECT u.lexeme, greatest(pg_catalog.cardinality(u.positions), 1)::float8 AS tf,
                   (pg_catalog.sum(greatest(pg_catalog.cardinality(u.positions), 1)) OVER ())::float8 AS dl
            FROM pg_catalog.unnest(h.tsv) u) d
        WHERE d.lexeme = ANY ($4::text[])),
    corpus AS (
        SELECT greatest(s.reltuples::float8, (SELECT pg_catalog.count(*) FROM hits)) AS n,
               (SELECT pg_catalog.avg(x.dl) FROM (SELECT DISTINCT t.id, t.dl FROM terms t) x) AS avgdl
        FROM pg_catalog.pg_class s WHERE s.oid = %4$L::pg_catalog.regclass),
    idf AS (
        SELECT t.lexeme, pg_catalog.ln(1 + (c.n - pg_catalog.count(*) + 0.5) / (pg_catalog.count(*) + 0.5)) AS w
        FROM terms t, corpus c GROUP BY t.lexeme, c.n),
    txt AS (
        SELECT t.id, pg_catalog.sum(i.w * t.tf * 2.2 / (t.tf + 1.2 * (0.25 + 0.75 * t.dl / c.avgdl))) AS r
        FROM terms t JOIN idf i ON i.lexeme = t.lexeme CROSS JOIN corpus c
        GROUP BY t.id ORDER BY r DESC, t.id LIMIT $3)$q$, tsvector, view, predicate, store);
    IF kind = 'text' THEN
        RETURN format($q$
    WITH %1$s
    SELECT (pg_catalog.row_number() OVER (ORDER BY t.r DESC, t.id))::int, t.r, ROW(v.*)::%2$s
    FROM txt t JOIN %2$s v ON v.embedding_uuid = t.id
    ORDER BY t.r DESC, t.id$q$, bm25, view);
    ELSIF kind = 'hybrid' THEN
        RETURN format($q$
    WITH vec AS MATERIALIZED (
        SELECT v.embedding_uuid AS id, v.embedding %1$s $1::%2$s AS d
        FROM %3$s v WHERE %4$s
        ORDER BY d LIMIT $3),
    %5$s,
    fused AS (
        SELECT coalesce(a.id, b.id) AS id, a.n AS vector_rank, b.n AS text_rank,
               coalesce($5 / ($7 + a.n), 0) + coalesce($6 / ($7 + b.n), 0) AS score
        FROM (SELECT id, pg_catalog.row_number() OVER (ORDER BY d, id) AS n FROM vec) a
        FULL JOIN (SELECT id, pg_catalog.row_number() OVER (ORDER BY r DESC, id) AS n FROM txt) b ON a.id = b.id
        ORDER BY score DESC, a.n NULLS LAST, b.n NULLS LAST LIMIT $2)
    SELECT (pg_catalog.row_number() OVER (ORDER BY f.score DESC, f.vector_rank NULLS LAST,
                                                   f.text_rank NULLS LAST))::int,
           f.score, f.vector_rank::int, f.text_rank::int, v.embedding %1$s $1::%2$s, ROW(v.*)::%3$s
    FROM fused f JOIN %3$s v ON v.embedding_uuid = f.id
    ORDER BY 1$q$, distance_op, vector_type, view, predicate, bm25);
    END IF;
    RAISE EXCEPTION 'unknown search kind %', kind USING ERRCODE = '22023';
END
$$;

-- k checked for every search function.
CREATE OR REPLACE FUNCTION ai._search_check_k(k int) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'k must be a positive number of results, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'e.g. k => 10';
    END IF;
END
$$;

-- pgvector's iterative scans for the rest of the transaction: let vector index scans go on
-- until the rows wanted pass the filter (pgvector 0.8; otherwise an HNSW scan stops after
-- hnsw.ef_search candidates), in relaxed order, unless the caller chose a mode. Returns the
-- caller's (hnsw.iterative_scan, ivfflat.iterative_scan) for ai._search_restore_settings. An
-- unset or empty setting (a placeholder left by a search that failed before pgvector was
-- loaded) counts as off.
-- (The search functions also plan with enable_mergejoin off, by their SET clause, which puts the
-- caller's value back by itself: a top-k never wants a merge join of the store and the source,
-- and costing one probes both ends of their key indexes, get_actual_variable_range: 0.05 ms of
-- the statement's 0.19 ms of planning.)
CREATE OR REPLACE FUNCTION ai._search_settings() RETURNS text[]
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    was text[] := ARRAY[coalesce(nullif(current_setting('hnsw.iterative_scan', true), ''), 'off'),
                        coalesce(nullif(current_setting('ivfflat.iterative_scan', true), ''), 'off')];
BEGIN
    IF was[1] = 'off' THEN
        PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
    END IF;
    IF was[2] = 'off' THEN
        PERFORM set_config('ivfflat.iterative_scan', 'relaxed_order', true);
    END IF;
    RETURN was;
END
$$;

-- Put back the settings ai._search_settings returned.
CREATE OR REPLACE FUNCTION ai._search_restore_settings(was text[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('hnsw.iterative_scan', was[1], true), set_config('ivfflat.iterative_scan', was[2], true);
END
$$;

-- Whether a semantic search may first scan without iterative scans: the caller chose no
-- iterative mode, and k is within hnsw.ef_search (an HNSW scan without them returns at most
-- that many candidates; pgvector's default is 40).
CREATE OR REPLACE FUNCTION ai._search_plain_scan(k int) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ef text := current_setting('hnsw.ef_search', true);
BEGIN
    RETURN coalesce(nullif(current_setting('hnsw.iterative_scan', true), ''), 'off') = 'off'
       AND coalesce(nullif(current_setting('ivfflat.iterative_scan', true), ''), 'off') = 'off'
       AND k <= CASE WHEN ef ~ '^[0-9]{1,9}$' THEN ef::int ELSE 40 END;
END
$$;

-- ===== semantic search =====================================================================

-- The k chunks nearest to the query, best first, with their source rows (hit) and distance.
-- filter: {"column": value, "other": [a, b], "gone": null} on the view's columns, values
-- quoted (safe for untrusted input); where_clause: a SQL condition on the view's columns,
-- run with the caller's rights (never build it from untrusted input). Both apply before k.
--
-- When nothing but dead rows can drop the index's candidates (s.unfiltered), the search first
-- scans without pgvector's iterative scans: they cost about 0.1 ms a search even when nothing
-- is dropped. Should that scan return fewer than k rows, the rest come from an iterative scan
-- that skips the rows returned and any nearer than the last of them. Filtered searches, and
-- callers who chose an iterative mode, scan iteratively from the start.
--
-- That first scan of a cached query is a statement this session prepared once
-- (ai._search_prepared_sql, named by a hash of its text and the view's row type): planning it
-- on every call cost more than a tenth of a millisecond, a third of search's own cost. It runs
-- only while the caller is the login role (current_user = session_user): a prepared statement
-- is the session's, so one of that name may have been made by the login role; run as the
-- login role it gains nothing (the role could run it directly), while inside a SECURITY
-- DEFINER function or after SET ROLE it would run with rights the login role lacks. Such
-- callers, uncached queries (the model's call outweighs planning) and sessions that hold 64 of
-- them plan the scan on every call. It returns rows only when all k came back; otherwise the
-- iterative scan runs from the start.
CREATE OR REPLACE FUNCTION ai.semantic_search(
    source anyelement,
    query text,
    k int DEFAULT 10,
    filter jsonb DEFAULT NULL,
    where_clause text DEFAULT NULL
) RETURNS TABLE (rank int, distance float8, hit anyelement)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET enable_mergejoin = off
AS $$
DECLARE
    s record;
    query_vector real[];
    was text[];
    r record;
    returned uuid[] := '{}';
    statement text;
    prepared text;
BEGIN
    IF k IS NULL OR k < 1 OR query IS NULL THEN
        PERFORM ai._search_check_k(k);
        RETURN;
    END IF;
    s := ai._search_parts(pg_catalog.pg_typeof(source)::oid, query, filter, where_clause, NULL, true);
    query_vector := coalesce(s.query_vector, ai._vectorizer_embed(s.vectorizer_id, query)::real[]);
    rank := 0;
    IF s.unfiltered AND ai._search_plain_scan(k) THEN
        IF s.query_vector IS NOT NULL AND current_user = session_user THEN
            statement := ai._search_prepared_sql(s.view, s.vector_type, s.distance_op, k);
            -- sha256, not md5 (which a FIPS build refuses); 15 + 48 characters, within a name's 63.
            prepared := 'pgweave_search_' || left(encode(sha256(convert_to(
                statement || pg_catalog.pg_typeof(source)::oid, 'UTF8')), 'hex'), 48);
            BEGIN
                RETURN QUERY EXECUTE format('EXECUTE %I(%L)', prepared, s.cache_key);
            EXCEPTION WHEN syntax_error OR feature_not_supported THEN
                -- 42601: not prepared in this session (yet, or deallocated since); 0A000: its
                -- view was made anew with another row type. Both before any row is returned.
                IF ai._search_prepare(prepared, statement) THEN
                    RETURN QUERY EXECUTE format('EXECUTE %I(%L)', prepared, s.cache_key);
                ELSE
                    prepared := NULL;
                END IF;
            END;
            IF FOUND AND prepared IS NOT NULL THEN
                rank := k;
            END IF;
        END IF;
        IF prepared IS NULL THEN
            FOR r IN EXECUTE ai._search_sql('semantic', s.view, s.vector_type, s.distance_op, s.predicate, s.store, NULL)
                     USING query_vector, k LOOP
                rank := rank + 1;
                distance := r.distance;
                hit := r.hit;
                returned := returned || r.id;
                RETURN NEXT;
            END LOOP;
        END IF;
    END IF;
    IF rank < k THEN
        was := ai._search_settings();
        FOR r IN EXECUTE ai._search_sql(CASE rank WHEN 0 THEN 'semantic_iterative' ELSE 'semantic_rest' END,
                                        s.view, s.vector_type, s.distance_op, s.predicate, s.store, NULL)
                 USING query_vector, k - rank, returned, distance LOOP
            rank := rank + 1;
            distance := r.distance;
            hit := r.hit;
            RETURN NEXT;
        END LOOP;
        PERFORM ai._search_restore_settings(was);
    END IF;
END
$$;

-- ===== full-text search ====================================================================

-- The k chunks that rank best for the query's words by BM25 (see ai._search_sql), best first,
-- with their source rows (hit) and score. No model call. filter and where_clause as in
-- semantic_search; language: the text-search configuration of the query and the chunks.
CREATE OR REPLACE FUNCTION ai.text_search(
    source anyelement,
    query text,
    k int DEFAULT 10,
    filter jsonb DEFAULT NULL,
    where_clause text DEFAULT NULL,
    language regconfig DEFAULT 'english'
) RETURNS TABLE (rank int, score float8, hit anyelement)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET enable_mergejoin = off
AS $$
DECLARE
    s record;
BEGIN
    IF k IS NULL OR k < 1 OR query IS NULL THEN
        PERFORM ai._search_check_k(k);
        RETURN;
    END IF;
    s := ai._search_parts(pg_catalog.pg_typeof(source)::oid, query, filter, where_clause,
                          coalesce(language, 'english')::oid, false);
    RETURN QUERY EXECUTE ai._search_sql('text', s.view, s.vector_type, s.distance_op, s.predicate,
                                        s.store, s.tsvector)
        USING NULL::real[], k, k, s.lexemes, 0::float8, 0::float8, 0;
END
$$;

-- ===== hybrid search =======================================================================

-- Full-text (BM25) and vector results fused by weighted reciprocal rank fusion:
-- score = vector_weight / (rrf_k + vector_rank) + text_weight / (rrf_k + text_rank),
-- over the top `candidates` (default greatest(4 * k, 40)) of each.
CREATE OR REPLACE FUNCTION ai.hybrid_search(
    source anyelement,
    query text,
    k int DEFAULT 10,
    vector_weight float8 DEFAULT 1.0,
    text_weight float8 DEFAULT 1.0,
    rrf_k int DEFAULT 60,
    filter jsonb DEFAULT NULL,
    where_clause text DEFAULT NULL,
    language regconfig DEFAULT 'english',
    candidates int DEFAULT NULL
) RETURNS TABLE (rank int, score float8, vector_rank int, text_rank int, distance float8, hit anyelement)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET enable_mergejoin = off
AS $$
DECLARE
    s record;
    was text[];
BEGIN
    PERFORM ai._search_check_k(k);
    IF coalesce(vector_weight, -1) < 0 OR coalesce(text_weight, -1) < 0 OR coalesce(rrf_k, -1) < 0 THEN
        RAISE EXCEPTION 'vector_weight, text_weight and rrf_k must be zero or more'
            USING ERRCODE = '22023', HINT = 'the defaults are vector_weight => 1, text_weight => 1, rrf_k => 60';
    END IF;
    IF candidates IS NOT NULL AND candidates < k THEN
        RAISE EXCEPTION 'candidates (%) must be at least k (%)', candidates, k USING ERRCODE = '22023',
            HINT = 'omit candidates for the default, greatest(4 * k, 40)';
    END IF;
    IF query IS NULL THEN
        RETURN;
    END IF;
    s := ai._search_parts(pg_catalog.pg_typeof(source)::oid, query, filter, where_clause,
                          coalesce(language, 'english')::oid, true);
    was := ai._search_settings();
    RETURN QUERY EXECUTE ai._search_sql('hybrid', s.view, s.vector_type, s.distance_op, s.predicate,
                                        s.store, s.tsvector)
        USING coalesce(s.query_vector, ai._vectorizer_embed(s.vectorizer_id, query)::real[]), k, coalesce(candidates, least(greatest(4::bigint * k, 40), 2147483647)::int),
              s.lexemes, vector_weight, text_weight, rrf_k;
    PERFORM ai._search_restore_settings(was);
END
$$;

-- ===== the full-text index =================================================================

-- Create the GIN index that text and hybrid search use for one language, on the store of a
-- vectorizer; only its owner may (searches never create indexes). Returns the index's name;
-- doing it again does nothing.
CREATE OR REPLACE FUNCTION ai.create_text_index(vectorizer_name text, language regconfig DEFAULT 'english')
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(ai._vectorizer_id(vectorizer_name));
    config text := coalesce(language, 'english')::text;
    store regclass := ai._qualified(v.target_schema, v.target_table)::regclass;
    expression text := format('to_tsvector(%L::regconfig, chunk)', config);
    index_name text := left(v.target_table, 40) || '_fts_' || left(replace(config, '.', '_'), 16);
    existing name;
BEGIN
    SELECT c.relname INTO existing FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = store AND pg_get_expr(i.indexprs, i.indrelid) = expression;
    IF existing IS NOT NULL THEN
        RETURN existing;
    END IF;
    IF NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = store), 'USAGE') THEN
        RAISE EXCEPTION 'only the owner of % may create its full-text index', store USING ERRCODE = '42501',
            HINT = format('ask the owner to run SELECT ai.create_text_index(%L, %L); searches work without it, '
                          'by scanning', vectorizer_name, config);
    END IF;
    EXECUTE format('CREATE INDEX %I ON %s USING gin (%s)', index_name, store, expression);
    RETURN index_name;
END
$$;
