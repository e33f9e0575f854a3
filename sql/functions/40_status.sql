-- Re-applied on every install: what operators look at.

-- The chunks of a vectorizer's store the caller can see (its rights and the store's policies
-- decide, so how many chunks exist says nothing a reader could not count itself); NULL for a
-- caller who may not read the store.
CREATE OR REPLACE FUNCTION ai._stored_chunks(vectorizer_id int) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    n bigint;
BEGIN
    IF NOT ai._is_plain_table(v.target_relid) OR NOT has_table_privilege(v.target_relid, 'SELECT') THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT pg_catalog.count(*) FROM %s', v.target_relid::regclass) INTO n;
    RETURN n;
EXCEPTION WHEN insufficient_privilege THEN
    RETURN NULL;   -- the store's policy reads source columns the caller may not read
END
$$;

-- One row per vectorizer: where it reads and writes, how much is waiting, how it went, and who
-- processes it. backlog_done / backlog_total: the current backlog (the backfill, or the burst
-- since the queue was last empty; once idle, the last one) — items processed of it, and those
-- plus what is pending.
CREATE OR REPLACE VIEW ai.vectorizer_status WITH (security_invoker = true) AS
SELECT
    v.id,
    v.name,
    ai._qualified(v.source_schema, v.source_table) AS source_table,
    ai._qualified(v.view_schema, v.view_name) AS view,
    ai._qualified(v.target_schema, v.target_table) AS target_table,
    q.pending AS pending_items,
    ai._queue_rows(v.id, true, NULL) AS failed_items,
    ai._stored_chunks(v.id) AS stored_chunks,
    p.items_processed,
    p.chunks_embedded,
    p.chunks_reused,
    p.model_calls,
    p.last_success_at,
    p.last_error_at,
    p.last_error,
    v.config->'embedding'->>'implementation' || ':' || (v.config->'embedding'->>'model') AS embedding_model,
    CASE
        WHEN v.config->'scheduling'->>'implementation' = 'none' THEN 'manual'
        WHEN (v.config->'scheduling'->>'disabled')::boolean THEN 'disabled'
        ELSE 'background'
    END AS schedule,
    ai._processed_by(v.id) AS processed_by,
    coalesce((v.config->'scheduling'->>'disabled')::boolean, false) AS disabled,
    b.done AS backlog_done,
    b.done + b.pending AS backlog_total,
    p.backlog_started_at,
    p.last_run_at,
    p.last_run_by,
    'embedding'::text AS embedding_column,
    v.owner
FROM ai.vectorizer v
LEFT JOIN ai._vectorizer_progress p ON p.vectorizer_id = v.id
CROSS JOIN LATERAL (SELECT coalesce(ai.vectorizer_queue_pending(v.id), 0) AS pending) q
CROSS JOIN LATERAL (SELECT CASE WHEN p.backlog_started_at IS NULL AND q.pending > 0 THEN 0   -- a new burst, not begun
                                ELSE p.items_processed - p.backlog_base END AS done, q.pending) b;

-- Errors with the vectorizer's name (visible to its owner's members). As in pgai, id is the
-- vectorizer's id (WHERE id = 1); error_id is the error's own.
CREATE OR REPLACE VIEW ai.vectorizer_errors WITH (security_invoker = true) AS
SELECT e.vectorizer_id AS id, e.message, e.details, e.recorded, e.vectorizer_id, v.name, e.id AS error_id
FROM ai._vectorizer_errors e
LEFT JOIN ai.vectorizer v ON v.id = e.vectorizer_id;
