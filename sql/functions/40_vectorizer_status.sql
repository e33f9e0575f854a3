-- Re-applied on every install: what operators look at.

-- One row per vectorizer: where it reads and writes, how much is waiting, how it went.
CREATE OR REPLACE VIEW ai.vectorizer_status AS
SELECT
    v.id,
    v.name,
    ai._qualified(v.source_schema, v.source_table) AS source_table,
    ai._qualified(v.view_schema, v.view_name) AS view,
    ai._qualified(v.target_schema, v.target_table) AS target_table,
    ai.vectorizer_queue_pending(v.id) AS pending_items,
    c.failed_items,
    c.stored_chunks,
    p.items_processed,
    p.chunks_embedded,
    p.chunks_reused,
    p.model_calls,
    p.last_success_at,
    p.last_error_at,
    p.last_error,
    v.config->'embedding'->>'implementation' || ':' || (v.config->'embedding'->>'model') AS embedding_model,
    CASE
        WHEN v.config->'scheduling'->>'implementation' <> 'cron' THEN 'manual'
        WHEN (v.config->'scheduling'->>'disabled')::boolean THEN 'disabled'
        ELSE 'cron'
    END AS schedule
FROM ai.vectorizer v
CROSS JOIN LATERAL ai._vectorizer_counts(v.id) c
LEFT JOIN ai._vectorizer_progress p ON p.vectorizer_id = v.id;

-- Errors, newest first, with the vectorizer's name.
CREATE OR REPLACE VIEW ai.vectorizer_errors AS
SELECT e.id, e.vectorizer_id, v.name, e.recorded, e.message, e.details
FROM ai._vectorizer_errors e
LEFT JOIN ai.vectorizer v ON v.id = e.vectorizer_id;
