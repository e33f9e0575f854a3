-- Re-applied on every install: functions that call model servers from SQL. Each is written as
-- ai._<name>_py in PL/Python, and ai._python_entry_point (00_python_loader.sql) makes ai.<name>,
-- the function users call, which re-raises its errors without PL/Python's class prefix.
--
-- Volatility: the embedding functions are IMMUTABLE although they call a server. That is
-- deliberate: with constant arguments the planner folds `ai.ollama_embed('m', 'q')` to a
-- constant once per query, so `ORDER BY embedding <=> ai.ollama_embed(...)` embeds the
-- query text once, not once per row (a STABLE function is re-evaluated per row in a
-- sequential scan). The cost: a model swapped under the same name is not noticed by
-- cached plans. Never use these functions in an index expression.
--
-- Parallel safety: every function here (and every other plpython3u function of pgweave) is
-- PARALLEL UNSAFE, so a statement that calls one never runs in parallel mode. PL/Python's
-- plpy.execute opens a subtransaction, which PostgreSQL 15 refuses in parallel mode, in a
-- worker and in the leader alike ("cannot start subtransactions during a parallel
-- operation"), and the interpreter of that backend can be left broken by it, up to a crash
-- of the server process. PARALLEL RESTRICTED is not enough: the leader runs the whole
-- statement in parallel mode too (a Gather, or force_parallel_mode). The cost: a statement
-- that mentions these functions gets no parallel plan, even where the call is folded to a
-- constant (tests/test_model_calling.py shows such a statement under forced parallelism).

-- Embed one text with Ollama's /api/embed; NULL in, NULL out.
CREATE OR REPLACE FUNCTION ai._ollama_embed_py(
    model text,
    input_text text,
    host text DEFAULT NULL,
    keep_alive text DEFAULT NULL,
    embedding_options jsonb DEFAULT NULL
) RETURNS vector
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
if input_text is None:
    return None
vector, = pw.ollama.embed(model, [input_text], host, keep_alive, embedding_options)
return vector
$python$;
SELECT ai._python_entry_point('ai._ollama_embed_py(text, text, text, text, jsonb)', 'ollama_embed');

-- Embed many texts in one /api/embed request; one row per input, NULL inputs give NULL.
CREATE OR REPLACE FUNCTION ai._ollama_embed_py(
    model text,
    input_texts text[],
    host text DEFAULT NULL,
    keep_alive text DEFAULT NULL,
    embedding_options jsonb DEFAULT NULL
) RETURNS TABLE ("index" int, embedding vector)
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
return pw.vectors.batch_rows(
    input_texts, lambda texts: pw.ollama.embed(model, texts, host, keep_alive, embedding_options))
$python$;
SELECT ai._python_entry_point('ai._ollama_embed_py(text, text[], text, text, jsonb)', 'ollama_embed');

-- The models an Ollama server has (/api/tags).
CREATE OR REPLACE FUNCTION ai._ollama_list_models_py(host text DEFAULT NULL)
RETURNS TABLE (name text, model text, size bigint, digest text, family text,
               format text, parameter_size text, quantization_level text, modified_at timestamptz,
               families text[], parent_model text)
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
for m in pw.ollama.list_models(host):
    d = m.get("details") or {}
    yield (m.get("name"), m.get("model"), m.get("size"), m.get("digest"), d.get("family"),
           d.get("format"), d.get("parameter_size"), d.get("quantization_level"), m.get("modified_at"),
           d.get("families"), d.get("parent_model"))
$python$;
SELECT ai._python_entry_point('ai._ollama_list_models_py(text)', 'ollama_list_models');

-- The models an Ollama server has loaded (/api/ps).
CREATE OR REPLACE FUNCTION ai._ollama_ps_py(host text DEFAULT NULL)
RETURNS TABLE (name text, model text, size bigint, digest text, parent_model text, format text,
               family text, parameter_size text, quantization_level text,
               expires_at timestamptz, size_vram bigint, families text[])
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
for m in pw.ollama.running_models(host):
    d = m.get("details") or {}
    yield (m.get("name"), m.get("model"), m.get("size"), m.get("digest"), d.get("parent_model"),
           d.get("format"), d.get("family"), d.get("parameter_size"), d.get("quantization_level"),
           m.get("expires_at"), m.get("size_vram"), d.get("families"))
$python$;
SELECT ai._python_entry_point('ai._ollama_ps_py(text)', 'ollama_ps');

-- Complete a prompt with Ollama's /api/generate (no streaming); returns Ollama's response.
CREATE OR REPLACE FUNCTION ai._ollama_generate_py(
    model text,
    prompt text,
    host text DEFAULT NULL,
    images bytea[] DEFAULT NULL,
    keep_alive text DEFAULT NULL,
    embedding_options jsonb DEFAULT NULL,   -- model options (num_predict, temperature, stop, …); pgai's name
    system_prompt text DEFAULT NULL,
    template text DEFAULT NULL,
    context int[] DEFAULT NULL,
    format jsonb DEFAULT NULL               -- '"json"' or a JSON schema
) RETURNS jsonb
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
import base64, json
encoded = [base64.b64encode(i).decode() for i in images] if images else None
return json.dumps(pw.ollama.generate(model, prompt, host, encoded, keep_alive, embedding_options,
                                     system_prompt, template, context, format))
$python$;
SELECT ai._python_entry_point('ai._ollama_generate_py(text, text, text, bytea[], text, jsonb, text, text, int[], jsonb)', 'ollama_generate');

-- Chat with Ollama's /api/chat (no streaming): messages, tools, format, options.
CREATE OR REPLACE FUNCTION ai._ollama_chat_complete_py(
    model text,
    messages jsonb,
    host text DEFAULT NULL,
    keep_alive text DEFAULT NULL,
    chat_options jsonb DEFAULT NULL,
    tools jsonb DEFAULT NULL,
    response_format jsonb DEFAULT NULL      -- '"json"' or a JSON schema (Ollama's "format")
) RETURNS jsonb
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
import json
return json.dumps(pw.ollama.chat(model, messages, host, keep_alive, chat_options, tools, response_format))
$python$;
SELECT ai._python_entry_point('ai._ollama_chat_complete_py(text, jsonb, text, text, jsonb, jsonb, jsonb)', 'ollama_chat_complete');
