-- Re-applied on every install: the constructors of a vectorizer's configuration.
-- Each returns the jsonb stored in ai.vectorizer.config; create_vectorizer validates them.

-- Load the text to embed from one column of the source row.
CREATE OR REPLACE FUNCTION ai.loading_column(column_name name, retries int DEFAULT 6) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'column', 'column_name', column_name, 'retries', retries) $$;

-- Embed with Ollama's /api/embed (or `pgweave serve`); base_url overrides ai.ollama_host.
CREATE OR REPLACE FUNCTION ai.embedding_ollama(model text, dimensions int, base_url text DEFAULT NULL,
                                               options jsonb DEFAULT NULL, keep_alive text DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('implementation', 'ollama', 'model', model,
        'dimensions', dimensions, 'base_url', base_url, 'options', options, 'keep_alive', keep_alive))
$$;

-- Embed with an OpenAI-compatible /embeddings; the key is looked up by name, never stored here.
CREATE OR REPLACE FUNCTION ai.embedding_openai(model text, dimensions int, chat_user text DEFAULT NULL,
                                               api_key_name text DEFAULT 'OPENAI_API_KEY',
                                               base_url text DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('implementation', 'openai', 'model', model,
        'dimensions', dimensions, 'user', chat_user, 'api_key_name', api_key_name, 'base_url', base_url))
$$;

-- Split recursively on separators (LangChain's RecursiveCharacterTextSplitter); current form.
CREATE OR REPLACE FUNCTION ai.chunking_recursive_character_text_splitter(
    chunk_size int DEFAULT 800, chunk_overlap int DEFAULT 400,
    separators text[] DEFAULT ARRAY[E'\n\n', E'\n', '.', '?', '!', ' ', ''],
    is_separator_regex boolean DEFAULT false)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('implementation', 'recursive_character_text_splitter',
        'chunk_size', chunk_size, 'chunk_overlap', chunk_overlap,
        'separators', to_jsonb(separators), 'is_separator_regex', is_separator_regex)
$$;

-- The 2024 form: the column to chunk comes first.
CREATE OR REPLACE FUNCTION ai.chunking_recursive_character_text_splitter(
    chunk_column name, chunk_size int DEFAULT 800, chunk_overlap int DEFAULT 400,
    separators text[] DEFAULT ARRAY[E'\n\n', E'\n', '.', '?', '!', ' ', ''],
    is_separator_regex boolean DEFAULT false)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT ai.chunking_recursive_character_text_splitter(chunk_size, chunk_overlap, separators,
                                                        is_separator_regex)
           || jsonb_build_object('chunk_column', chunk_column)
$$;

-- Split on one separator (LangChain's CharacterTextSplitter); current form.
CREATE OR REPLACE FUNCTION ai.chunking_character_text_splitter(
    chunk_size int DEFAULT 800, chunk_overlap int DEFAULT 400, separator text DEFAULT E'\n\n',
    is_separator_regex boolean DEFAULT false)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('implementation', 'character_text_splitter', 'chunk_size', chunk_size,
        'chunk_overlap', chunk_overlap, 'separator', separator, 'is_separator_regex', is_separator_regex)
$$;

-- The 2024 form: the column to chunk comes first.
CREATE OR REPLACE FUNCTION ai.chunking_character_text_splitter(
    chunk_column name, chunk_size int DEFAULT 800, chunk_overlap int DEFAULT 400,
    separator text DEFAULT E'\n\n', is_separator_regex boolean DEFAULT false)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT ai.chunking_character_text_splitter(chunk_size, chunk_overlap, separator, is_separator_regex)
           || jsonb_build_object('chunk_column', chunk_column)
$$;

-- One chunk per row: the whole text.
CREATE OR REPLACE FUNCTION ai.chunking_none() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'none') $$;

-- What is embedded for each chunk: a string.Template over $chunk and the source columns.
CREATE OR REPLACE FUNCTION ai.formatting_python_template(template text DEFAULT '$chunk') RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'python_template', 'template', template) $$;

-- Create an HNSW index on the store once it holds min_rows chunks (by the background job).
CREATE OR REPLACE FUNCTION ai.indexing_hnsw(min_rows int DEFAULT 100000,
                                            opclass text DEFAULT 'vector_cosine_ops',
                                            m int DEFAULT NULL, ef_construction int DEFAULT NULL,
                                            create_when_queue_empty boolean DEFAULT true)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('implementation', 'hnsw', 'min_rows', min_rows,
        'opclass', opclass, 'm', m, 'ef_construction', ef_construction,
        'create_when_queue_empty', create_when_queue_empty))
$$;

-- Never create a vector index.
CREATE OR REPLACE FUNCTION ai.indexing_none() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'none') $$;

-- The default index: HNSW with cosine distance from 100,000 chunks on.
CREATE OR REPLACE FUNCTION ai.indexing_default() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT ai.indexing_hnsw() $$;

-- Process in the background: the database's scheduler (35_scheduler), which `pgweave install`
-- arranges with pg_cron wherever pg_cron lives, serves the vectorizer. The arguments are
-- pgai's and kept for its SQL: one scheduler serves every vectorizer continuously, so
-- schedule, loop_seconds and poll_interval are stored and not read (ai._scheduler holds the
-- scheduler's own loop_seconds and poll_interval).
CREATE OR REPLACE FUNCTION ai.scheduling_cron(schedule text DEFAULT '* * * * *',
                                              loop_seconds int DEFAULT 62,
                                              poll_interval float8 DEFAULT 0.2)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('implementation', 'cron', 'schedule', schedule,
        'loop_seconds', loop_seconds, 'poll_interval', poll_interval)
$$;

-- No background processing: CALL ai.execute_vectorizer(...) or run `pgweave worker`.
CREATE OR REPLACE FUNCTION ai.scheduling_none() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('implementation', 'none') $$;

-- Background processing by the database's scheduler (ai.scheduling_cron()).
CREATE OR REPLACE FUNCTION ai.scheduling_default() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT ai.scheduling_cron() $$;

-- How the engine works: queue items per batch, parallel workers, attempts before parking.
-- A failed item waits retry_base_seconds * 2^attempts (at most an hour) before its next try.
CREATE OR REPLACE FUNCTION ai.processing_default(batch_size int DEFAULT 50, concurrency int DEFAULT 1,
                                                 max_attempts int DEFAULT 6,
                                                 embedding_batch_size int DEFAULT 64,
                                                 retry_base_seconds float8 DEFAULT 2)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_build_object('implementation', 'default', 'batch_size', batch_size,
        'concurrency', concurrency, 'max_attempts', max_attempts,
        'embedding_batch_size', embedding_batch_size, 'retry_base_seconds', retry_base_seconds)
$$;

-- Where the chunks go: a store table and a view. JSON text rather than jsonb so that
-- create_vectorizer's destination accepts both this and a plain view name ('blog_embeddings').
CREATE OR REPLACE FUNCTION ai.destination_table(destination name DEFAULT NULL,
                                                target_schema name DEFAULT NULL,
                                                target_table name DEFAULT NULL,
                                                view_schema name DEFAULT NULL,
                                                view_name name DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('implementation', 'table', 'destination', destination,
        'target_schema', target_schema, 'target_table', target_table,
        'view_schema', view_schema, 'view_name', view_name))::text
$$;

-- Raise a clear error, with a hint, for a chunking config that cannot end well: a chunk_size
-- too small, an overlap above half the size, separators that are not strings, a separator regex
-- that does not compile or backtracks (its time grows faster than the text). create_vectorizer
-- calls it.
CREATE OR REPLACE FUNCTION ai._check_chunking_py(chunking jsonb) RETURNS void
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
import json
if chunking is None:
    return None
try:
    pw.chunking.check_config(json.loads(chunking))
except pw.chunking.ChunkingConfigError as exc:
    pw.errors.fail(str(exc), hint=exc.hint, sqlstate="22023")
$python$;
SELECT ai._python_entry_point('ai._check_chunking_py(jsonb)', '_check_chunking');

-- A warning for an embedding config whose model the reachable model server does not have:
-- the models it has and how to get the one asked for. NULL when all is well, and NULL when
-- the server cannot be reached (a vectorizer may be created offline). create_vectorizer calls it.
CREATE OR REPLACE FUNCTION ai._embedding_model_warning_py(embedding jsonb) RETURNS text
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
import json
config = json.loads(embedding) if embedding is not None else {}
provider = {"ollama": pw.ollama, "openai": pw.openai}.get(config.get("implementation"))
return provider.model_warning(config) if provider else None
$python$;
SELECT ai._python_entry_point('ai._embedding_model_warning_py(jsonb)', '_embedding_model_warning');
