-- Created once, by alembic revision 0006. Never edited after release.
-- The history of evaluations (sql/functions/75_evaluation.sql): one row per run, with a
-- snapshot of the configuration it measured, and one row per query of the run.
-- Rows are written only by the evaluation functions, as the owner of ai, under the login
-- role that ran them (run_by); row-level security shows a role the runs of the roles it is a
-- member of (superusers and the owner see all), so a run's queries and retrieved keys never
-- reach a role that did not run them.
CREATE TABLE IF NOT EXISTS ai.evaluation_run (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    run_by          name NOT NULL DEFAULT session_user,
    kind            text NOT NULL CHECK (kind IN ('retrieval', 'rag')),
    label           text,
    vectorizer_id   int,           -- no foreign key: the history outlives a dropped vectorizer
    vectorizer_name text NOT NULL,
    query_set       text NOT NULL, -- the table of labelled queries, as named when run
    method          text NOT NULL, -- semantic | hybrid | text (retrieval); rag
    k               int NOT NULL,
    config          jsonb NOT NULL,  -- {"vectorizer": its config, "search": parameters, ...}
    metrics         jsonb NOT NULL,  -- aggregates: {"ndcg@10": 0.61, "latency_ms_p50": 12.3, ...}
    queries         int NOT NULL,    -- queries scored (with at least one relevant document)
    skipped         int NOT NULL     -- queries without a relevant document (no metrics)
);
CREATE INDEX IF NOT EXISTS evaluation_run_vectorizer ON ai.evaluation_run (vectorizer_name, created_at DESC);

CREATE TABLE IF NOT EXISTS ai.evaluation_query (
    run_id     bigint NOT NULL REFERENCES ai.evaluation_run (id) ON DELETE CASCADE,
    query_id   text NOT NULL,
    query      text NOT NULL,
    metrics    jsonb,            -- NULL when the query has no relevant document
    retrieved  jsonb NOT NULL,   -- source keys in rank order (each source row once)
    relevant   jsonb NOT NULL,   -- {"key": grade}
    latency_ms float8,
    details    jsonb,            -- RAG: the answer, the judge's prompt and reply
    PRIMARY KEY (run_id, query_id)
);

ALTER TABLE ai.evaluation_run ENABLE ROW LEVEL SECURITY;
ALTER TABLE ai.evaluation_query ENABLE ROW LEVEL SECURITY;
CREATE POLICY evaluation_run_member ON ai.evaluation_run FOR SELECT USING (
    run_by = session_user OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = run_by
                                     AND pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')));
CREATE POLICY evaluation_query_member ON ai.evaluation_query FOR SELECT USING (
    EXISTS (SELECT 1 FROM ai.evaluation_run r WHERE r.id = run_id));
REVOKE ALL ON ai.evaluation_run, ai.evaluation_query FROM PUBLIC;
