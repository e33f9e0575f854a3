-- Re-applied on every install: the query-embedding cache (ai._query_embedding_cache), so a
-- repeated search query costs no model call. Python: plpython/pgweave_db/query_cache.py.
--
-- Who may do what:
--   * the bound (ai.query_cache_size entries, default 10000) is the database's: set with
--     ALTER DATABASE … SET ai.query_cache_size (its owner or a superuser) or ALTER ROLE ALL …
--     (a superuser). A session's SET can only turn the cache off for itself (0); any other
--     session or per-role value is ignored, so no caller can grow the cache.
--   * every key is scoped to the login role: one role never reads, nor learns of, another's queries.
--   * ai._query_cache_read (SECURITY DEFINER) reads the table as its owner for any caller, and
--     so answers only with the caller's own entries (the scope above); the searches call it
--     from SQL, so a hit keeps the vector in binary from the cache to the index scan.
--   * ai._query_cache_put writes the table as its owner; no role may call it (90_privileges.sql
--     and ai.grant_ai_usage leave it out). The search code reaches it through
--     ai._query_cache_write, a SECURITY DEFINER gateway that answers only while the search code
--     is asking and that stores only the vector the model just returned.

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
-- PL/pgSQL: every ai function pins search_path, and a SQL function with a SET clause is
-- parsed and planned again in each transaction that calls it.
CREATE OR REPLACE FUNCTION ai._query_cache_scope(cache_key text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN encode(sha256(convert_to(session_user || E'\n' || cache_key, 'UTF8')), 'hex');
END
$$;

-- The key of a query's embedding: a hash of everything that decides the vector (provider,
-- model, the host the request goes to now, dimensions, options) and the text, so another
-- model, host or size never shares an entry. The host is the config's base_url, else the
-- provider's setting (ai.ollama_host, ai.openai_base_url; settings.py), else NULL for the
-- built-in default. Used by the searches (50_search.sql) and by query_cache.py alike.
CREATE OR REPLACE FUNCTION ai._query_cache_key(embedding jsonb, query text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN encode(sha256(convert_to(jsonb_build_object(
        'implementation', embedding -> 'implementation', 'model', embedding -> 'model',
        'endpoint', coalesce(nullif(btrim(embedding ->> 'base_url'), ''),
                             nullif(btrim(current_setting(CASE embedding ->> 'implementation'
                                                              WHEN 'openai' THEN 'ai.openai_base_url'
                                                              ELSE 'ai.ollama_host' END, true)), '')),
        'dimensions', embedding -> 'dimensions', 'options', embedding -> 'options', 'text', query)::text,
        'UTF8')), 'hex');
END
$$;

-- A cached query embedding of the caller's, or NULL. Any role may call it: it reads only
-- the entries of the login role (ai._query_cache_scope). Marks the entry used (at most once a
-- minute, so that a hit usually writes nothing and costs no WAL flush at commit; never in a
-- read-only transaction, e.g. on a standby). Off (NULL) when this session's
-- ai.query_cache_size is 0, which is the database's 0 too unless a role or session set
-- another value: a read serves only the caller's own entries, so a role that reads its
-- entries again gains nothing; what is stored and how much is ai._query_cache_put's (the
-- database's bound, ai._query_cache_size).
CREATE OR REPLACE FUNCTION ai._query_cache_read(cache_key text) RETURNS real[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    setting text := btrim(current_setting('ai.query_cache_size', true));
    scoped text;
    found real[];
    used timestamptz;
BEGIN
    -- Off, or not a number (ai._query_cache_size says why); unset is on.
    IF (CASE WHEN setting ~ '^[0-9]{1,9}$' THEN setting::int = 0 ELSE setting IS NOT NULL END) THEN
        IF ai._query_cache_size() = 0 THEN
            RETURN NULL;
        END IF;
    END IF;
    scoped := ai._query_cache_scope(cache_key);
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

-- The writer's gateway (Python: query_cache.write): as the cache's owner, and only for the
-- search code of this backend (a direct call is refused).
CREATE OR REPLACE FUNCTION ai._query_cache_write(cache_key text) RETURNS text
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].query_cache.write(cache_key)
$python$;

-- The embedding of a search query from the model, then cached (Python:
-- query_cache.vectorizer_query_embedding): ai._vectorizer_embed, the miss path of
-- ai.vectorizer_embed and of the searches, which read the cache first; it does not read it
-- again.
CREATE OR REPLACE FUNCTION ai._vectorizer_embed_py(vectorizer_id int, input_text text) RETURNS vector
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
if input_text is None:
    return None
return GD["pgweave"].query_cache.vectorizer_query_embedding(vectorizer_id, input_text)
$python$;

SELECT ai._python_entry_point('ai._vectorizer_embed_py(int, text)', '_vectorizer_embed');

-- ai.vectorizer_embed(vectorizer_id, input_text): the embedding of a search query, made like
-- the vectorizer's chunks (same provider, model, host and dimensions), cached; NULL in, NULL
-- out. A cached query is answered in SQL (a PL/Python call costs a quarter of a millisecond in
-- a fresh transaction); only a new one goes to Python and the model. IMMUTABLE for the reason
-- given in 10_ollama.sql: in `ORDER BY embedding <=> ai.vectorizer_embed(1, 'q')` the planner
-- embeds the query once.
CREATE OR REPLACE FUNCTION ai.vectorizer_embed(vectorizer_id int, input_text text) RETURNS vector
LANGUAGE plpgsql IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cached real[];
BEGIN
    IF input_text IS NULL THEN
        RETURN NULL;
    END IF;
    cached := ai._query_cache_read(ai._query_cache_key(
        (SELECT v.config -> 'embedding' FROM ai.vectorizer v WHERE v.id = vectorizer_id), input_text));
    IF cached IS NOT NULL THEN
        RETURN cached;   -- pgvector's assignment cast real[] -> vector
    END IF;
    RETURN ai._vectorizer_embed(vectorizer_id, input_text);
END
$$;

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
