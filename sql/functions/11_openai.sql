-- Re-applied on every install: any OpenAI-compatible server (vLLM, llama.cpp, LM Studio,
-- Ollama's /v1, OpenAI). base_url: argument, then ai.openai_base_url, then OpenAI's API.
-- Keys: api_key, else the secret named api_key_name (default OPENAI_API_KEY) from the session
-- setting ai.<name>, the secret store (ai.grant_secret) or the server's environment.
-- Embedding functions are IMMUTABLE, and every function here PARALLEL UNSAFE, for the
-- reasons given in 10_ollama.sql.

-- Embed one text with /embeddings; NULL in, NULL out.
CREATE OR REPLACE FUNCTION ai._openai_embed_py(
    model text,
    input_text text,
    api_key text DEFAULT NULL,
    api_key_name text DEFAULT NULL,
    dimensions int DEFAULT NULL,
    openai_user text DEFAULT NULL,
    base_url text DEFAULT NULL
) RETURNS vector
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
if input_text is None:
    return None
vector, = pw.openai.embed(model, [input_text], api_key, api_key_name, dimensions, openai_user, base_url)
return vector
$python$;
SELECT ai._python_entry_point('ai._openai_embed_py(text, text, text, text, int, text, text)', 'openai_embed');

-- Embed many texts in one /embeddings request; one row per input (0-based), NULL gives NULL.
CREATE OR REPLACE FUNCTION ai._openai_embed_py(
    model text,
    input_texts text[],
    api_key text DEFAULT NULL,
    api_key_name text DEFAULT NULL,
    dimensions int DEFAULT NULL,
    openai_user text DEFAULT NULL,
    base_url text DEFAULT NULL
) RETURNS TABLE ("index" int, embedding vector)
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
return pw.vectors.batch_rows(input_texts, lambda texts: pw.openai.embed(
    model, texts, api_key, api_key_name, dimensions, openai_user, base_url))
$python$;
SELECT ai._python_entry_point('ai._openai_embed_py(text, text[], text, text, int, text, text)', 'openai_embed');

-- Chat with /chat/completions (no streaming); returns the response object.
CREATE OR REPLACE FUNCTION ai._openai_chat_complete_py(
    model text,
    messages jsonb,
    api_key text DEFAULT NULL,
    api_key_name text DEFAULT NULL,
    frequency_penalty float8 DEFAULT NULL,
    logit_bias jsonb DEFAULT NULL,
    logprobs boolean DEFAULT NULL,
    top_logprobs int DEFAULT NULL,
    max_tokens int DEFAULT NULL,
    n int DEFAULT NULL,
    presence_penalty float8 DEFAULT NULL,
    response_format jsonb DEFAULT NULL,
    seed int DEFAULT NULL,
    stop text DEFAULT NULL,
    temperature float8 DEFAULT NULL,
    top_p float8 DEFAULT NULL,
    tools jsonb DEFAULT NULL,
    tool_choice text DEFAULT NULL,
    openai_user text DEFAULT NULL,
    base_url text DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
import json
return json.dumps(pw.openai.chat_complete(
    model, messages, api_key, api_key_name, base_url,
    frequency_penalty=frequency_penalty, logit_bias=logit_bias, logprobs=logprobs,
    top_logprobs=top_logprobs, max_tokens=max_tokens, n=n, presence_penalty=presence_penalty,
    response_format=response_format, seed=seed, stop=stop, temperature=temperature, top_p=top_p,
    tools=tools, tool_choice=tool_choice, user=openai_user))
$python$;
SELECT ai._python_entry_point('ai._openai_chat_complete_py(text, jsonb, text, text, float8, jsonb, boolean, int, int, int, float8, jsonb, int, text, float8, float8, jsonb, text, text, text)', 'openai_chat_complete');

-- The models an OpenAI-compatible server offers (/models).
CREATE OR REPLACE FUNCTION ai._openai_list_models_py(
    api_key text DEFAULT NULL,
    api_key_name text DEFAULT NULL,
    base_url text DEFAULT NULL
) RETURNS TABLE (id text, created timestamptz, owned_by text)
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
pw = GD["pgweave"]
import datetime
for m in pw.openai.list_models(api_key, api_key_name, base_url):
    created = m.get("created")
    when = datetime.datetime.fromtimestamp(created, datetime.timezone.utc).isoformat() if created else None
    yield (m.get("id"), when, m.get("owned_by"))
$python$;
SELECT ai._python_entry_point('ai._openai_list_models_py(text, text, text)', 'openai_list_models');
