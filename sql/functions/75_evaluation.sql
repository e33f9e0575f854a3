-- Re-applied on every install: evaluation of retrieval and RAG on labelled queries, next to
-- the data. Python: plpython/pgweave_db/evaluation.py; the history: ai.evaluation_run and
-- ai.evaluation_query (sql/catalog/0006_evaluation.sql).
--
-- A query set is any table the caller may read with the columns
--     query_id text, query text, relevant jsonb   -- {"source key": grade}, grade > 0 relevant
-- (loaders for TREC, BEIR and CSV: `pgweave eval load`). Searches run as the caller.
-- Every function users call is made by ai._python_entry_point (clean errors) and pins
-- search_path; the history is written only by the evaluation code (ai._evaluation_save, a
-- gateway), as the owner of ai, under the login role, and read through row-level security (a role sees the runs of roles it is a
-- member of). PARALLEL UNSAFE (they run Python) for the reason given in 10_ollama.sql.

-- Write one run and its queries; the run's id. Owner-only (90_privileges.sql): reached
-- through the gateway ai._evaluation_save.
CREATE OR REPLACE FUNCTION ai._evaluation_insert(run jsonb, results jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run_id bigint;
BEGIN
    INSERT INTO ai.evaluation_run (run_by, kind, label, vectorizer_id, vectorizer_name, query_set, method, k,
                                   config, metrics, queries, skipped)
    VALUES (session_user, run->>'kind', run->>'label', (run->>'vectorizer_id')::int, run->>'vectorizer_name',
            run->>'query_set', run->>'method', (run->>'k')::int, run->'config', run->'metrics',
            (run->>'queries')::int, (run->>'skipped')::int)
    RETURNING id INTO run_id;
    INSERT INTO ai.evaluation_query (run_id, query_id, query, metrics, retrieved, relevant, latency_ms, details)
    SELECT run_id, r->>'query_id', r->>'query', nullif(r->'metrics', 'null'), r->'retrieved', r->'relevant',
           (r->>'latency_ms')::float8, nullif(r->'details', 'null')
    FROM jsonb_array_elements(results) r;
    RETURN run_id;
END
$$;

-- The gateway (Python: evaluation.save, plpython/pgweave_db/gateway.py): as the owner of ai,
-- and only for the evaluation code of this backend, which has just scored the run; a direct
-- call is refused, so no role writes a run it did not measure.
CREATE OR REPLACE FUNCTION ai._evaluation_save(run jsonb, results jsonb) RETURNS bigint
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].evaluation.save(run, results)
$python$;

-- The metrics of one ranking of source keys against graded relevance, at k (NULL when no
-- document is relevant): recall, precision, hit rate, MRR, AP (map) and nDCG (linear gains).
CREATE OR REPLACE FUNCTION ai._retrieval_metrics_py(ranked text[], relevant jsonb, k int DEFAULT 10) RETURNS jsonb
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].evaluation.retrieval_metrics(ranked, relevant, k)
$python$;
SELECT ai._python_entry_point('ai._retrieval_metrics_py(text[], jsonb, int)', 'retrieval_metrics');

-- Score a vectorizer on a query set with one search method ('semantic', 'hybrid' with its
-- weights, or 'text'), per query and in aggregate, and record the run with a snapshot of the
-- configuration. chunks: how many chunks each search returns before they are folded into
-- source rows (default greatest(10 * k, 100)).
CREATE OR REPLACE FUNCTION ai._evaluate_retrieval_py(
    vectorizer text,
    queries regclass,
    method text DEFAULT 'semantic',
    k int DEFAULT 10,
    vector_weight float8 DEFAULT 1.0,
    text_weight float8 DEFAULT 1.0,
    rrf_k int DEFAULT 60,
    language regconfig DEFAULT 'english',
    chunks int DEFAULT NULL,
    label text DEFAULT NULL,
    OUT run_id bigint, OUT scored int, OUT skipped int, OUT metrics jsonb)
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
r = GD["pgweave"].evaluation.evaluate_retrieval(vectorizer, queries, method, k, vector_weight, text_weight,
                                                rrf_k, language, chunks, label)
return {"run_id": r["run_id"], "scored": r["queries"], "skipped": r["skipped"], "metrics": r["metrics"]}
$python$;
SELECT ai._python_entry_point(
    'ai._evaluate_retrieval_py(text, regclass, text, int, float8, float8, int, regconfig, int, text)',
    'evaluate_retrieval');

-- The default prompt of the RAG judge ({question}, {sources}, {answer} are filled in);
-- pass another as evaluate_rag's judge_prompt.
CREATE OR REPLACE FUNCTION ai._rag_judge_prompt_py() RETURNS text
LANGUAGE plpython3u IMMUTABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
return GD["pgweave"].evaluation.DEFAULT_JUDGE_PROMPT
$python$;
SELECT ai._python_entry_point('ai._rag_judge_prompt_py()', 'rag_judge_prompt');

-- Answer every query of a query set with RAG (ai.rag_prompt, then the chat model), have a
-- chat model (judge_model, default the same) score faithfulness, answer relevance and context
-- precision with the judge prompt, and record the run: per query the scores, the retrieval
-- metrics of the sources, and in details the answer, the judge's prompt and its reply.
CREATE OR REPLACE FUNCTION ai._evaluate_rag_py(
    vectorizer text,
    queries regclass,
    model text,
    k int DEFAULT 5,
    judge_model text DEFAULT NULL,
    judge_prompt text DEFAULT NULL,
    implementation text DEFAULT NULL,
    base_url text DEFAULT NULL,
    api_key_name text DEFAULT NULL,
    options jsonb DEFAULT NULL,
    label text DEFAULT NULL,
    OUT run_id bigint, OUT scored int, OUT skipped int, OUT metrics jsonb)
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
r = GD["pgweave"].evaluation.evaluate_rag(vectorizer, queries, model, k, judge_model, judge_prompt,
                                          implementation, base_url, api_key_name, options, label)
return {"run_id": r["run_id"], "scored": r["queries"], "skipped": r["skipped"], "metrics": r["metrics"]}
$python$;
SELECT ai._python_entry_point(
    'ai._evaluate_rag_py(text, regclass, text, int, text, text, text, text, text, jsonb, text)', 'evaluate_rag');

-- Compare run B with run A over their common scored queries: per metric both means, B - A
-- with a 95% paired bootstrap interval and a paired permutation p-value, and how many queries
-- got better and worse in B (latency: the runs' own figures, no interval).
CREATE OR REPLACE FUNCTION ai._compare_evaluations_py(run_a bigint, run_b bigint, resamples int DEFAULT 1000)
RETURNS TABLE (metric text, queries int, run_a_value float8, run_b_value float8, difference float8,
               ci_low float8, ci_high float8, p_value float8, better int, worse int)
LANGUAGE plpython3u STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $python$
if GD.get("pgweave_hash") != "@CODE_HASH@": plpy.execute("SELECT ai._load_python()")
columns = ("metric", "queries", "difference", "ci_low", "ci_high", "p_value", "better", "worse")
return [dict({c: r[c] for c in columns}, run_a_value=r["run_a"], run_b_value=r["run_b"])
        for r in GD["pgweave"].evaluation.compare(run_a, run_b, resamples)]
$python$;
SELECT ai._python_entry_point('ai._compare_evaluations_py(bigint, bigint, int)', 'compare_evaluations');

-- The queries whose metric (default nDCG at the runs' k) changed from run A to run B, the
-- largest changes first: negative differences got worse.
CREATE OR REPLACE FUNCTION ai.evaluation_changes(run_a bigint, run_b bigint, metric text DEFAULT NULL)
RETURNS TABLE (query_id text, query text, run_a_value float8, run_b_value float8, difference float8)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    WITH m AS (SELECT coalesce(metric, 'ndcg@' || (SELECT r.k FROM ai.evaluation_run r WHERE r.id = run_a)) AS name)
    SELECT a.query_id, a.query, (a.metrics->>m.name)::float8, (b.metrics->>m.name)::float8,
           (b.metrics->>m.name)::float8 - (a.metrics->>m.name)::float8
    FROM m, ai.evaluation_query a JOIN ai.evaluation_query b ON b.query_id = a.query_id
    WHERE a.run_id = run_a AND b.run_id = run_b
      AND (b.metrics->>m.name)::float8 IS DISTINCT FROM (a.metrics->>m.name)::float8
    ORDER BY abs((b.metrics->>m.name)::float8 - (a.metrics->>m.name)::float8) DESC NULLS LAST, a.query_id
$$;

-- The runs the caller may see, newest first, with their headline metrics.
CREATE OR REPLACE VIEW ai.evaluation_runs WITH (security_invoker = true) AS
    SELECT r.id, r.created_at, r.run_by, r.kind, r.label, r.vectorizer_name, r.query_set, r.method, r.k,
           r.queries, r.skipped, (r.metrics->>('ndcg@' || r.k))::float8 AS ndcg,
           (r.metrics->>('recall@' || r.k))::float8 AS recall, (r.metrics->>('mrr@' || r.k))::float8 AS mrr,
           (r.metrics->>'latency_ms_p50')::float8 AS latency_ms_p50, r.metrics, r.config
    FROM ai.evaluation_run r
    ORDER BY r.id DESC;
GRANT SELECT ON ai.evaluation_runs TO PUBLIC;   -- security_invoker: the tables' grants and RLS apply
