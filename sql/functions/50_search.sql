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
-- decide which rows exist before anything is ranked, counted or limited. They do not pin
-- search_path, so a where_clause sees the caller's functions. Only the query-embedding cache
-- is reached as its owner, through ai._query_cache_get / _put, which scope every entry to the
-- login role, and the full-text index is created as the owner (ai._ensure_text_index).
-- The statements themselves are built in plpython/pgweave_db/search.py.
--
-- Errors: no search entry point is written in Python; each Python function here is an
-- internal *_py function behind an entry point made by ai._python_entry_point
-- (00_python_loader.sql), which re-raises its errors without PL/Python's class prefix.
--
-- Parallel safety: the functions here that run Python (directly or through a search) are
-- PARALLEL UNSAFE, the default, for the reason given in 10_ollama.sql.

-- ===== the query-embedding cache ===========================================================

-- ai.query_cache_size: the most entries kept (default 10000; 0 turns the cache off). Any role
-- may SET it for its session (a custom setting, no privilege needed): 0 bypasses the cache for
-- that session; a smaller bound also evicts other roles' least recently used entries when the
-- session adds one.
CREATE OR REPLACE FUNCTION ai._query_cache_size() RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw text := nullif(btrim(current_setting('ai.query_cache_size', true)), '');
BEGIN
    IF raw IS NULL THEN
        RETURN 10000;
    END IF;
    IF raw !~ '^[0-9]{1,9}$' THEN
        RAISE EXCEPTION 'setting ai.query_cache_size = % is not a whole number', quote_literal(raw)
            USING ERRCODE = '22023', HINT = 'SET ai.query_cache_size = 10000 (0 turns the cache off), or RESET it';
    END IF;
    RETURN raw::int;
END
$$;

-- The cache key of the login role: one role never reads, nor learns of, another's queries.
CREATE OR REPLACE FUNCTION ai._query_cache_scope(cache_key text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT encode(sha256(convert_to(session_user || E'\n' || cache_key, 'UTF8')), 'hex') $$;

-- A cached query embedding, or NULL. Marks the entry used (at most once a minute, so that a
-- hit usually writes nothing and costs no WAL flush at commit; never in a read-only
-- transaction, e.g. on a standby).
CREATE OR REPLACE FUNCTION ai._query_cache_get(cache_key text) RETURNS real[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    scoped text := ai._query_cache_scope(cache_key);
    found real[];
    used timestamptz;
BEGIN
    IF ai._query_cache_size() = 0 THEN
        RETURN NULL;
    END IF;
    SELECT c.embedding, c.last_used INTO found, used FROM ai._query_embedding_cache c WHERE c.key = scoped;
    IF found IS NOT NULL AND used < clock_timestamp() - interval '1 minute'
       AND current_setting('transaction_read_only') = 'off' THEN
        -- SKIP LOCKED: a hit never waits for another transaction that holds the entry.
        UPDATE ai._query_embedding_cache c SET last_used = clock_timestamp()
        WHERE c.key = (SELECT o.key FROM ai._query_embedding_cache o WHERE o.key = scoped
                       FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN found;
END
$$;

-- Remember a query embedding, then evict the least recently used entries above the bound.
-- Returns the embedding (as stored: float4, like a vector).
CREATE OR REPLACE FUNCTION ai._query_cache_put(cache_key text, embedding real[]) RETURNS real[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    size int := ai._query_cache_size();
    excess bigint;
BEGIN
    IF size = 0 OR current_setting('transaction_read_only') = 'on' THEN
        RETURN embedding;
    END IF;
    INSERT INTO ai._query_embedding_cache AS c (key, embedding, last_used)
    VALUES (ai._query_cache_scope(cache_key), embedding, clock_timestamp())
    ON CONFLICT (key) DO UPDATE SET embedding = excluded.embedding, last_used = excluded.last_used;
    SELECT count(*) - size INTO excess FROM ai._query_embedding_cache;
    IF excess > 0 THEN
        -- SKIP LOCKED: entries another transaction is touching are young anyway.
        DELETE FROM ai._query_embedding_cache c WHERE c.key IN (
            SELECT o.key FROM ai._query_embedding_cache o ORDER BY o.last_used LIMIT excess
            FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN embedding;
END
$$;

-- The embedding of a search query (Python: search.vectorizer_query_embedding).
CREATE OR REPLACE FUNCTION ai._vectorizer_embed_py(vectorizer_id int, input_text text) RETURNS vector
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
if input_text is None:
    return None
return GD["pgweave"].search.vectorizer_query_embedding(vectorizer_id, input_text)
$python$;

-- ai.vectorizer_embed(vectorizer_id, input_text): the embedding of a search query, made like
-- the vectorizer's chunks (same provider, model, host and dimensions), cached; NULL in, NULL
-- out. IMMUTABLE for the reason given in 10_ollama.sql: in `ORDER BY embedding <=>
-- ai.vectorizer_embed(1, 'q')` the planner embeds the query once.
SELECT ai._python_entry_point('ai._vectorizer_embed_py(int, text)', 'vectorizer_embed');

-- The same, for a vectorizer named by name.
CREATE OR REPLACE FUNCTION ai.vectorizer_embed(vectorizer_name text, input_text text) RETURNS vector
LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF input_text IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN ai.vectorizer_embed(ai._vectorizer_id(vectorizer_name), input_text);
END
$$;

-- ===== the search statement ==============================================================

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

-- The statement a search runs over the view, the query's embedding (cached) and, for hybrid
-- search (language given), the query's lexemes (Python: search.search_statement).
CREATE OR REPLACE FUNCTION ai._search_statement_py(
    row_type oid, query text, filter jsonb, where_clause text, language oid,
    OUT vectorizer_id int, OUT query_vector text, OUT lexemes text[], OUT statement text)
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].search.search_statement(row_type, query, filter, where_clause, language)
$python$;

SELECT ai._python_entry_point('ai._search_statement_py(oid, text, jsonb, text, oid)', '_search_statement');

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
    hnsw_was text;
    ivfflat_was text;
BEGIN
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'k must be a positive number of results, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'e.g. k => 10';
    END IF;
    IF query IS NULL THEN
        RETURN;
    END IF;
    s := ai._search_statement(pg_catalog.pg_typeof(source)::oid, query, filter, where_clause, NULL);
    -- Let vector index scans go on until k rows pass the filter (pgvector 0.8 iterative scans;
    -- otherwise an HNSW scan stops after hnsw.ef_search candidates), unless the caller chose
    -- a mode; the caller's settings are put back afterwards.
    hnsw_was := pg_catalog.current_setting('hnsw.iterative_scan', true);
    ivfflat_was := pg_catalog.current_setting('ivfflat.iterative_scan', true);
    IF coalesce(hnsw_was, 'off') = 'off' THEN
        PERFORM pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true);
    END IF;
    IF coalesce(ivfflat_was, 'off') = 'off' THEN
        PERFORM pg_catalog.set_config('ivfflat.iterative_scan', 'relaxed_order', true);
    END IF;
    RETURN QUERY EXECUTE s.statement USING s.query_vector, k;
    PERFORM pg_catalog.set_config('hnsw.iterative_scan', coalesce(hnsw_was, 'off'), true);
    PERFORM pg_catalog.set_config('ivfflat.iterative_scan', coalesce(ivfflat_was, 'off'), true);
END
$$;

-- ===== hybrid search =======================================================================

-- Create the full-text index hybrid search needs on a vectorizer's store, once per language.
-- As the owner of ai (the caller may only read the view), and only for a caller who may.
CREATE OR REPLACE FUNCTION ai._ensure_text_index(vectorizer_id int, language regconfig) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    store regclass := ai._qualified(v.target_schema, v.target_table)::regclass;
    expression text := format('to_tsvector(%L::regconfig, chunk)', language::text);
    index_name text := left(v.target_table, 40) || '_fts_' || left(replace(language::text, '.', '_'), 16);
BEGIN
    IF NOT has_table_privilege(session_user, ai._qualified(v.view_schema, v.view_name), 'SELECT') THEN
        RETURN;   -- the search itself will say "permission denied"
    END IF;
    IF EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = store
               AND pg_get_expr(i.indexprs, i.indrelid) = expression) THEN
        RETURN;
    END IF;
    IF current_setting('transaction_read_only') = 'on' THEN
        RETURN;   -- searches still work, by scanning
    END IF;
    -- Two first searches at once would both try to create it: the second waits here, then
    -- finds the first one's index.
    PERFORM pg_advisory_xact_lock(hashtext('pgweave text index'), vectorizer_id);
    IF NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = store
                   AND pg_get_expr(i.indexprs, i.indrelid) = expression) THEN
        RAISE NOTICE 'creating full-text index % on % for hybrid search', index_name, store;
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin (%s)', index_name, store, expression);
    END IF;
END
$$;

-- Full-text and vector results fused by reciprocal rank fusion:
-- score = vector_weight / (rrf_k + vector_rank) + text_weight / (rrf_k + text_rank),
-- over the top `candidates` (default greatest(4 * k, 40)) of each. The text rank orders chunks
-- by the summed inverse document frequency of the query's words they contain (any word, not
-- all: questions rarely share every word with the passage that answers them).
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
    hnsw_was text;
    ivfflat_was text;
BEGIN
    IF k IS NULL OR k < 1 THEN
        RAISE EXCEPTION 'k must be a positive number of results, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'e.g. k => 10';
    END IF;
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
    s := ai._search_statement(pg_catalog.pg_typeof(source)::oid, query, filter, where_clause,
                              coalesce(language, 'english')::oid);
    PERFORM ai._ensure_text_index(s.vectorizer_id, coalesce(language, 'english'));
    hnsw_was := pg_catalog.current_setting('hnsw.iterative_scan', true);   -- as in semantic_search
    ivfflat_was := pg_catalog.current_setting('ivfflat.iterative_scan', true);
    IF coalesce(hnsw_was, 'off') = 'off' THEN
        PERFORM pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true);
    END IF;
    IF coalesce(ivfflat_was, 'off') = 'off' THEN
        PERFORM pg_catalog.set_config('ivfflat.iterative_scan', 'relaxed_order', true);
    END IF;
    RETURN QUERY EXECUTE s.statement
    USING s.query_vector, k, s.lexemes, coalesce(candidates, greatest(4 * k, 40)),
          vector_weight, text_weight, rrf_k;
    PERFORM pg_catalog.set_config('hnsw.iterative_scan', coalesce(hnsw_was, 'off'), true);
    PERFORM pg_catalog.set_config('ivfflat.iterative_scan', coalesce(ivfflat_was, 'off'), true);
END
$$;

-- ===== RAG =================================================================================

-- The user message of a RAG call (Python: search.rag_prompt).
CREATE OR REPLACE FUNCTION ai._rag_prompt_py(vectorizer_id int, question text, hits jsonb) RETURNS text
LANGUAGE plpython3u STABLE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].search.rag_prompt(vectorizer_id, question, hits)
$python$;

SELECT ai._python_entry_point('ai._rag_prompt_py(int, text, jsonb)', '_rag_prompt');

-- Ask a chat model (Python: search.rag_answer).
CREATE OR REPLACE FUNCTION ai._rag_answer_py(vectorizer_id int, model text, implementation text, base_url text,
                                             api_key_name text, system_prompt text, prompt text, options jsonb)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].search.rag_answer(vectorizer_id, model, implementation, base_url, api_key_name,
                                       system_prompt, prompt, options)
$python$;

SELECT ai._python_entry_point('ai._rag_answer_py(int, text, text, text, text, text, text, jsonb)', '_rag_answer');

-- Retrieve the k best chunks and build the prompt a RAG call sends: the numbered sources,
-- formatted like they were embedded, then the question. sources: [{n, distance, key,
-- chunk_seq, chunk}], n being the number the prompt cites.
CREATE OR REPLACE FUNCTION ai.rag_prompt(
    source anyelement,
    question text,
    k int DEFAULT 5,
    filter jsonb DEFAULT NULL,
    where_clause text DEFAULT NULL
) RETURNS TABLE (prompt text, sources jsonb)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v ai.vectorizer := ai._search_vectorizer(pg_catalog.pg_typeof(source)::oid);
    hits jsonb;
BEGIN
    IF question IS NULL THEN
        RAISE EXCEPTION 'question must not be NULL' USING ERRCODE = '22004', HINT = 'pass the question to answer';
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'n', s.rank, 'distance', s.distance,
               'key', (SELECT jsonb_object_agg(pk->>'attname', r->(pk->>'attname'))
                       FROM jsonb_array_elements(v.source_pk) pk),
               'chunk_seq', r->'chunk_seq', 'chunk', r->>'chunk', 'row', r - 'embedding') ORDER BY s.rank), '[]')
    INTO hits
    FROM ai.semantic_search(source, question, k, filter, where_clause) s, LATERAL to_jsonb(s.hit) r;
    prompt := ai._rag_prompt(v.id, question, hits);
    sources := (SELECT coalesce(jsonb_agg(h - 'row' ORDER BY i), '[]')
                FROM jsonb_array_elements(hits) WITH ORDINALITY AS e(h, i));
    RETURN NEXT;
END
$$;

-- Retrieval-augmented generation: retrieve, prompt a chat model with the sources, and return
-- its answer with the sources it was given and the prompt. The chat model is asked through
-- the vectorizer's provider and host unless implementation ('ollama' | 'openai') and
-- base_url say otherwise; options: Ollama's options, or OpenAI's parameters (max_tokens, ...).
CREATE OR REPLACE FUNCTION ai.rag(
    source anyelement,
    question text,
    model text,
    k int DEFAULT 5,
    filter jsonb DEFAULT NULL,
    where_clause text DEFAULT NULL,
    system_prompt text DEFAULT NULL,
    implementation text DEFAULT NULL,
    base_url text DEFAULT NULL,
    api_key_name text DEFAULT NULL,
    options jsonb DEFAULT NULL
) RETURNS TABLE (answer text, sources jsonb, prompt text)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    v ai.vectorizer := ai._search_vectorizer(pg_catalog.pg_typeof(source)::oid);
BEGIN
    SELECT p.prompt, p.sources INTO prompt, sources
    FROM ai.rag_prompt(source, question, k, filter, where_clause) p;
    answer := ai._rag_answer(v.id, model, implementation, base_url, api_key_name, system_prompt,
                             prompt, options);
    RETURN NEXT;
END
$$;
