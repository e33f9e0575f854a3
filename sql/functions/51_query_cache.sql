-- Re-applied on every install: the query-embedding cache (ai._query_embedding_cache), so a
-- repeated search query costs no model call. Python: plpython/pgweave_db/query_cache.py.
--
-- Who may do what:
--   * the bound (ai.query_cache_size entries, default 10000) is the database's: set with
--     ALTER DATABASE … SET ai.query_cache_size (its owner or a superuser) or ALTER ROLE ALL …
--     (a superuser). A session's SET can only turn the cache off for itself (0); any other
--     session or per-role value is ignored, so no caller can grow the cache.
--   * ai._query_cache_get / _put read and write the table as its owner; no role may call them
--     (90_privileges.sql and ai.grant_ai_usage leave them out). The search code reaches them
--     through ai._query_cache_read / _write, SECURITY DEFINER gateways that answer only while
--     the search code is asking and that store only the vector the model just returned.
--   * every key is scoped to the login role: one role never reads, nor learns of, another's queries.

-- The most entries kept: the database's ai.query_cache_size (ALTER DATABASE … SET, or ALTER
-- ROLE ALL … SET), default 10000; 0 when the cache is off, for the database or this session.
CREATE OR REPLACE FUNCTION ai._query_cache_size() RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    session_value text := nullif(btrim(current_setting('ai.query_cache_size', true)), '');
    raw text;
BEGIN
    IF session_value IS NOT NULL AND session_value !~ '^[0-9]{1,9}$' THEN
        RAISE EXCEPTION 'setting ai.query_cache_size = % is not a whole number', quote_literal(session_value)
            USING ERRCODE = '22023', HINT = 'SET ai.query_cache_size = 0 turns the cache off for this session; '
                                            'RESET ai.query_cache_size turns it back on';
    END IF;
    IF session_value::int = 0 THEN
        RETURN 0;
    END IF;
    -- The database's own setting first, then one for every database; never a role's.
    SELECT substr(c, length('ai.query_cache_size=') + 1) INTO raw
    FROM pg_db_role_setting s, unnest(s.setconfig) AS c
    WHERE s.setrole = 0 AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
      AND c LIKE 'ai.query\_cache\_size=%'
    ORDER BY s.setdatabase DESC LIMIT 1;
    raw := nullif(btrim(raw), '');
    IF raw IS NULL THEN
        RETURN 10000;
    END IF;
    IF raw !~ '^[0-9]{1,9}$' THEN
        RAISE EXCEPTION 'the database''s setting ai.query_cache_size = % is not a whole number', quote_literal(raw)
            USING ERRCODE = '22023', HINT = 'ALTER DATABASE … SET ai.query_cache_size = 10000 (0 turns the cache off)';
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
-- transaction, e.g. on a standby). Internal: reached through ai._query_cache_read.
CREATE OR REPLACE FUNCTION ai._query_cache_get(cache_key text) RETURNS real[]
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
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
-- Returns the embedding (as stored: float4, like a vector). Internal: reached through
-- ai._query_cache_write.
CREATE OR REPLACE FUNCTION ai._query_cache_put(cache_key text, embedding real[]) RETURNS real[]
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
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

-- The gateways (Python: query_cache.read / write): as the cache's owner, and only for the
-- search code of this backend (a direct call is refused).
CREATE OR REPLACE FUNCTION ai._query_cache_read(cache_key text) RETURNS text
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].query_cache.read(cache_key)
$python$;

CREATE OR REPLACE FUNCTION ai._query_cache_write(cache_key text) RETURNS text
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].query_cache.write(cache_key)
$python$;

-- The embedding of a search query (Python: query_cache.vectorizer_query_embedding).
CREATE OR REPLACE FUNCTION ai._vectorizer_embed_py(vectorizer_id int, input_text text) RETURNS vector
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
if input_text is None:
    return None
return GD["pgweave"].query_cache.vectorizer_query_embedding(vectorizer_id, input_text)
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
