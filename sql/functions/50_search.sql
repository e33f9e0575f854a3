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
-- comes from the cache in SQL (ai._search_query_vector), so a cached vector reaches the index
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
-- store, quoted; the WHERE clause of filter and where_clause (true without them); the query
-- embedding's key in the query cache (when embed); when language is given, the query's
-- lexemes and the chunk's tsvector expression; and whether nothing but dead rows can drop the
-- index's candidates (unfiltered: no filter, no where_clause, no row-level security on the
-- source). Written in PL/pgSQL, Python only for a filter: a PL/Python call here
-- cost a search a quarter of a millisecond.
--
-- The view is locked before the catalog is read, as a new generation's swap does
-- (38_alter.sql): a swap either finished before (the catalog and the view both show the new
-- generation) or waits for this search. Without the right to lock it, nothing is locked (the
-- search then says what is missing).
CREATE OR REPLACE FUNCTION ai._search_parts(
    row_type oid, query text, filter jsonb, where_clause text, language oid, embed boolean,
    OUT vectorizer_id int, OUT view text, OUT vector_type text, OUT distance_op text, OUT predicate text,
    OUT store text, OUT cache_key text, OUT lexemes text[], OUT tsvector text, OUT unfiltered boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- By pg_type's oid index: pg_class has no index on reltype (scanning it cost 60 us).
    view_oid oid := (SELECT t.typrelid FROM pg_type t WHERE t.oid = row_type);
    z ai.vectorizer;
    vector_schema text := (SELECT quote_ident(n.nspname) FROM pg_extension e
                           JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector');
BEGIN
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = view_oid) = 'v' THEN
        BEGIN
            EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', view_oid::regclass);
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;
        END;
    END IF;
    SELECT v.* INTO z FROM ai.vectorizer v WHERE v.view_relid = view_oid;
    IF z.id IS NULL THEN
        z := ai._search_vectorizer(row_type);   -- by the view's name, or an error showing the call
    END IF;
    vectorizer_id := z.id;
    view := ai._qualified(z.view_schema, z.view_name);
    store := ai._qualified(z.target_schema, z.target_table);
    vector_type := vector_schema || '.vector';
    distance_op := format('OPERATOR(%s.%s)', vector_schema, CASE z.config #>> '{indexing,opclass}'
        WHEN 'vector_l2_ops' THEN '<->' WHEN 'vector_ip_ops' THEN '<#>' WHEN 'vector_l1_ops' THEN '<+>'
        ELSE '<=>' END);
    predicate := CASE WHEN filter IS NULL AND coalesce(btrim(where_clause), '') = '' THEN 'true'
                      ELSE ai._search_predicate(view_oid, filter, where_clause) END;
    -- The store's own policy (33_store.sql) shows the chunks of the source rows the caller
    -- sees: it drops candidates only where the source's row-level security does, or for rows
    -- deleted and not yet removed, as the view's join does.
    unfiltered := predicate = 'true'
                  AND NOT coalesce((SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = z.source_relid), true);
    IF embed THEN
        cache_key := ai._query_cache_key(z.config -> 'embedding', query);
    END IF;
    IF language IS NOT NULL THEN
        lexemes := tsvector_to_array(to_tsvector(language::regconfig, query));
        tsvector := format('pg_catalog.to_tsvector(%L::pg_catalog.regconfig, v.chunk)', language::regconfig::text);
    END IF;
END
$$;

-- The query's vector (float4, as pgvector keeps it): the caller's cached one, else the
-- model's (ai._vectorizer_embed embeds it like the vectorizer's chunks and caches it).
CREATE OR REPLACE FUNCTION ai._search_query_vector(vectorizer_id int, cache_key text, query text) RETURNS real[]
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce(ai._query_cache_read(cache_key), ai._vectorizer_embed(vectorizer_id, query)::real[]);
END
$$;

-- The statement of a search of this kind ('semantic', 'text' or 'hybrid') over one view.
-- Its parameters, the same for every kind (unused ones are ignored), in the order every search
-- function passes them with EXECUTE … USING:
--   $1 query_vector real[] (the query's embedding)   $2 k int (results)
--   $3 candidates int (each branch's top, hybrid; k for text search; semantic: the fewest
--      rows worth returning, none when fewer were found)
--   $4 lexemes text[] (the query's, in the search's language)
--   $5 vector_weight float8   $6 text_weight float8   $7 rrf_k int
--
-- Semantic: the k nearest chunks and their whole rows, in one pass over the view: an index
-- scan stops after k rows, and without an index the planner builds the rows after its top-k
-- sort, so only k are ever built (a second join back to the view cost 0.5 ms of planning and
-- execution per call). relaxed_order (iterative scans) may return rows slightly out of order:
-- materialize, then sort.
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
    bm25 text := format($q$
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
BEGIN
    IF kind = 'semantic' THEN
        RETURN format($q$
    WITH top AS MATERIALIZED (
        SELECT v.embedding_uuid AS id, v.embedding %1$s $1::%2$s AS distance, ROW(v.*)::%3$s AS hit
        FROM %3$s v WHERE %4$s
        ORDER BY distance LIMIT $2)
    SELECT (pg_catalog.row_number() OVER (ORDER BY t.distance, t.id))::int, t.distance, t.hit
    FROM top t WHERE (SELECT pg_catalog.count(*) FROM top) OPERATOR(pg_catalog.>=) $3
    ORDER BY t.distance, t.id$q$, distance_op, vector_type, view, predicate);
    ELSIF kind = 'text' THEN
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

-- The settings a search runs its statement with, for the rest of the transaction; returns the
-- caller's (hnsw.iterative_scan, ivfflat.iterative_scan, enable_mergejoin) for
-- ai._search_restore_settings.
--   * iterative: let vector index scans go on until k rows pass the filter (pgvector 0.8
--     iterative scans; otherwise an HNSW scan stops after hnsw.ef_search candidates), unless
--     the caller chose a mode. An unset or empty setting (a placeholder left by a search that
--     failed before pgvector was loaded) counts as off.
--   * enable_mergejoin off: a top-k never wants a merge join of the store and the source, and
--     costing one probes both ends of their key indexes (get_actual_variable_range): 0.05 ms
--     of the statement's 0.19 ms of planning.
CREATE OR REPLACE FUNCTION ai._search_settings(iterative boolean) RETURNS text[]
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    was text[] := ARRAY[coalesce(nullif(current_setting('hnsw.iterative_scan', true), ''), 'off'),
                        coalesce(nullif(current_setting('ivfflat.iterative_scan', true), ''), 'off'),
                        current_setting('enable_mergejoin')];
BEGIN
    IF iterative AND was[1] = 'off' THEN
        PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
    END IF;
    IF iterative AND was[2] = 'off' THEN
        PERFORM set_config('ivfflat.iterative_scan', 'relaxed_order', true);
    END IF;
    PERFORM set_config('enable_mergejoin', 'off', true);
    RETURN was;
END
$$;

-- Put back the settings ai._search_settings returned.
CREATE OR REPLACE FUNCTION ai._search_restore_settings(was text[]) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('hnsw.iterative_scan', was[1], true);
    PERFORM set_config('ivfflat.iterative_scan', was[2], true);
    PERFORM set_config('enable_mergejoin', was[3], true);
END
$$;

-- Whether a semantic search should first scan without iterative scans: the caller chose no
-- iterative mode (was: the caller's settings, from ai._search_settings), and k is within
-- hnsw.ef_search (an HNSW scan without them returns at most that many candidates; pgvector's
-- default is 40).
CREATE OR REPLACE FUNCTION ai._search_plain_first(k int, was text[]) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ef text := current_setting('hnsw.ef_search', true);
BEGIN
    RETURN was[1] = 'off' AND was[2] = 'off' AND k <= CASE WHEN ef ~ '^[0-9]{1,9}$' THEN ef::int ELSE 40 END;
END
$$;

-- ===== semantic search =====================================================================

-- The k chunks nearest to the query, best first, with their source rows (hit) and distance.
-- filter: {"column": value, "other": [a, b], "gone": null} on the view's columns, values
-- quoted (safe for untrusted input); where_clause: a SQL condition on the view's columns,
-- run with the caller's rights (never build it from untrusted input). Both apply before k.
CREATE OR REPLACE FUNCTION ai.semantic_search(
    source anyelement,
    query text,
    k int DEFAULT 10,
    filter jsonb DEFAULT NULL,
    where_clause text DEFAULT NULL
) RETURNS TABLE (rank int, distance float8, hit anyelement)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    s record;
    statement text;
    query_vector real[];
    was text[];
    done boolean := false;
BEGIN
    IF k IS NULL OR k < 1 OR query IS NULL THEN
        PERFORM ai._search_check_k(k);
        RETURN;
    END IF;
    s := ai._search_parts(pg_catalog.pg_typeof(source)::oid, query, filter, where_clause, NULL, true);
    statement := ai._search_sql('semantic', s.view, s.vector_type, s.distance_op, s.predicate, s.store, s.tsvector);
    query_vector := ai._search_query_vector(s.vectorizer_id, s.cache_key, query);
    -- When nothing but dead rows can drop candidates, first without iterative scans (they cost
    -- about 0.1 ms a search even then): the statement returns its rows only if all k came back.
    was := ai._search_settings(false);
    IF s.unfiltered AND ai._search_plain_first(k, was) THEN
        RETURN QUERY EXECUTE statement USING query_vector, k, k, NULL::text[], 0::float8, 0::float8, 0;
        done := FOUND;
    END IF;
    IF NOT done THEN
        PERFORM ai._search_settings(true);
        RETURN QUERY EXECUTE statement USING query_vector, k, 0, NULL::text[], 0::float8, 0::float8, 0;
    END IF;
    PERFORM ai._search_restore_settings(was);
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
LANGUAGE plpgsql VOLATILE
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
LANGUAGE plpgsql VOLATILE
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
    was := ai._search_settings(true);
    RETURN QUERY EXECUTE ai._search_sql('hybrid', s.view, s.vector_type, s.distance_op, s.predicate,
                                        s.store, s.tsvector)
        USING ai._search_query_vector(s.vectorizer_id, s.cache_key, query), k, coalesce(candidates, least(greatest(4::bigint * k, 40), 2147483647)::int),
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
