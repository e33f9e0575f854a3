-- Re-applied on every install: retrieval-augmented generation over a vectorizer's view.
-- Python: plpython/pgweave_db/rag.py. Errors as in 50_search.sql (entry points made by
-- ai._python_entry_point); PARALLEL UNSAFE for the reason given in 10_ollama.sql.

-- The user message of a RAG call (Python: rag.rag_prompt).
CREATE OR REPLACE FUNCTION ai._rag_prompt_py(vectorizer_id int, question text, hits jsonb) RETURNS text
LANGUAGE plpython3u STABLE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].rag.rag_prompt(vectorizer_id, question, hits)
$python$;

SELECT ai._python_entry_point('ai._rag_prompt_py(int, text, jsonb)', '_rag_prompt');

-- Ask a chat model (Python: rag.rag_answer).
CREATE OR REPLACE FUNCTION ai._rag_answer_py(vectorizer_id int, model text, implementation text, base_url text,
                                             api_key_name text, system_prompt text, prompt text, options jsonb)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].rag.rag_answer(vectorizer_id, model, implementation, base_url, api_key_name,
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
