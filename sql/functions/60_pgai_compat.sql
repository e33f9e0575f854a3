-- Re-applied on every install: pgai's SQL that pgweave had no counterpart for, so that pgai's
-- documented calls run here (README "Coming from pgai"). Each one either does what pgai's
-- does, or refuses at once with an error naming the pgweave way.

-- The roles a vectorizer grants read access to: create_vectorizer(..., grant_to => ai.grant_to('bob')).
CREATE OR REPLACE FUNCTION ai.grant_to(VARIADIC grantees name[] DEFAULT '{}') RETURNS name[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(array_agg(DISTINCT g ORDER BY g), '{}') FROM unnest(grantees) g WHERE g IS NOT NULL $$;

-- pgai's embedding in a column of the source row (no chunking): not written by pgweave.
CREATE OR REPLACE FUNCTION ai.destination_column(embedding_column name) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'pgweave does not write embeddings into a column of the source table (ai.destination_column(%))',
        quote_literal(embedding_column) USING ERRCODE = '0A000',
        HINT = 'use destination => ai.destination_table(...) with chunking => ai.chunking_none(): one chunk per row, '
               'in a store joined to the source by the view (SELECT ..., embedding FROM <view>)';
END
$$;

-- pgai's TimescaleDB job scheduling. pgweave schedules with its own scheduler (pg_cron); this
-- stands for background processing where TimescaleDB is installed and refuses elsewhere.
CREATE OR REPLACE FUNCTION ai.scheduling_timescaledb(schedule_interval interval DEFAULT '5 minutes',
                                                     initial_start timestamptz DEFAULT NULL,
                                                     fixed_schedule boolean DEFAULT NULL,
                                                     timezone text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RAISE EXCEPTION 'ai.scheduling_timescaledb() needs the timescaledb extension, which is not installed in this database'
            USING ERRCODE = '0A000',
            HINT = 'pgweave processes in the background without it: use scheduling => ai.scheduling_default() '
                   '(or leave scheduling out)';
    END IF;
    RETURN ai.scheduling_default() || jsonb_strip_nulls(jsonb_build_object(
        'requested', 'timescaledb', 'schedule_interval', schedule_interval::text));
END
$$;

-- pgai's DiskANN index (pgvectorscale). pgweave creates HNSW indexes only: refused with the
-- statement that creates one by hand.
CREATE OR REPLACE FUNCTION ai.indexing_diskann(min_rows int DEFAULT 100000, storage_layout text DEFAULT NULL,
                                               num_neighbors int DEFAULT NULL, search_list_size int DEFAULT NULL,
                                               max_alpha float8 DEFAULT NULL, num_dimensions int DEFAULT NULL,
                                               num_bits_per_dimension int DEFAULT NULL,
                                               create_when_queue_empty boolean DEFAULT true)
RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vectorscale') THEN
        RAISE EXCEPTION 'ai.indexing_diskann() needs the vectorscale extension, which is not installed in this database'
            USING ERRCODE = '0A000',
            HINT = 'use indexing => ai.indexing_hnsw() (pgvector), or install pgvectorscale';
    END IF;
    RAISE EXCEPTION 'pgweave does not create DiskANN indexes itself' USING ERRCODE = '0A000',
        HINT = 'pass indexing => ai.indexing_none() and create it once: CREATE INDEX ON <store> USING diskann (embedding)';
END
$$;

-- Split text on one separator into chunks (pgai's ai.chunk_text; LangChain's CharacterTextSplitter).
CREATE OR REPLACE FUNCTION ai._chunk_text_py(input text, chunk_size int DEFAULT NULL, chunk_overlap int DEFAULT NULL,
                                             separator text DEFAULT NULL, is_separator_regex boolean DEFAULT false)
RETURNS TABLE (seq bigint, chunk text)
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].pgai_compat.chunk_text(input, chunk_size, chunk_overlap, separator, is_separator_regex)
$python$;
SELECT ai._python_entry_point('ai._chunk_text_py(text, int, int, text, boolean)', 'chunk_text');

-- Split text recursively on separators (pgai's ai.chunk_text_recursively).
CREATE OR REPLACE FUNCTION ai._chunk_text_recursively_py(input text, chunk_size int DEFAULT NULL,
                                                         chunk_overlap int DEFAULT NULL,
                                                         separators text[] DEFAULT NULL,
                                                         is_separator_regex boolean DEFAULT false)
RETURNS TABLE (seq bigint, chunk text)
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].pgai_compat.chunk_text_recursively(input, chunk_size, chunk_overlap, separators,
                                                        is_separator_regex)
$python$;
SELECT ai._python_entry_point('ai._chunk_text_recursively_py(text, int, int, text[], boolean)', 'chunk_text_recursively');

-- OpenAI's token ids of a text (pgai's ai.openai_tokenize), with tiktoken where the server has it.
CREATE OR REPLACE FUNCTION ai._openai_tokenize_py(model text, text_input text) RETURNS int[]
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].pgai_compat.tokenize(model, text_input)
$python$;
SELECT ai._python_entry_point('ai._openai_tokenize_py(text, text)', 'openai_tokenize');

-- The text of OpenAI token ids (pgai's ai.openai_detokenize), with tiktoken where the server has it.
CREATE OR REPLACE FUNCTION ai._openai_detokenize_py(model text, tokens int[]) RETURNS text
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].pgai_compat.detokenize(model, tokens)
$python$;
SELECT ai._python_entry_point('ai._openai_detokenize_py(text, int[])', 'openai_detokenize');

-- Embed one text given as OpenAI token ids (pgai's ai.openai_embed(model, int[])); NULL in,
-- NULL out. Servers that take token ids (OpenAI) embed them; Ollama and `pgweave serve` refuse.
-- The arguments are the text form's (11_openai.sql), with input_tokens for input_text.
CREATE OR REPLACE FUNCTION ai._openai_embed_py(model text, input_tokens int[], api_key text DEFAULT NULL,
    api_key_name text DEFAULT NULL, dimensions int DEFAULT NULL, openai_user text DEFAULT NULL,
    base_url text DEFAULT NULL) RETURNS vector
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].pgai_compat.embed_tokens(model, input_tokens, api_key, api_key_name, dimensions,
                                              openai_user, base_url)
$python$;
SELECT ai._python_entry_point('ai._openai_embed_py(text, int[], text, text, int, text, text)', 'openai_embed');

-- pgai's queue column loading_retries (its docs query it): the attempts so far. Added to the
-- queues of vectorizers created before it existed (ai._queue_ddl creates it on new ones).
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT q.queue_relid::regclass AS queue FROM ai.vectorizer q
             WHERE ai._is_plain_table(q.queue_relid)
               AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = q.queue_relid
                               AND a.attname = 'loading_retries' AND NOT a.attisdropped)
    LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN loading_retries int GENERATED ALWAYS AS (_attempts) STORED', v.queue);
    END LOOP;
END
$$;
