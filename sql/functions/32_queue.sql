-- Re-applied on every install: a vectorizer's queue (work items: a key to re-read) and its
-- failed-items queue (items parked after max_attempts). The trigger (31_trigger) fills the
-- queue, the engine (34_engine) claims from it, ai.retry_failed moves parked items back.
-- Both are owned by the vectorizer's owner and keyed by base types.

-- The statements that create a vectorizer's queues (one place for their shape).
CREATE OR REPLACE FUNCTION ai._queue_ddl(vectorizer_id int) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[
        format($q$CREATE TABLE %s (
            _id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            %s,
            _queued_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
            _attempts int NOT NULL DEFAULT 0,
            _retry_after timestamptz,
            _last_error text,
            loading_retries int GENERATED ALWAYS AS (_attempts) STORED   -- pgai's name for it
        )$q$, ai._qualified(v.queue_schema, v.queue_table), ai._pk_columns(v.source_pk, false)),
        format('CREATE INDEX ON %s (%s)', ai._qualified(v.queue_schema, v.queue_table), ai._pk_list(v.source_pk)),
        format($q$CREATE TABLE %s (
            _id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            %s,
            _failed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
            _attempts int NOT NULL,
            _last_error text
        )$q$, ai._qualified(v.queue_schema, v.queue_failed_table), ai._pk_columns(v.source_pk, false)),
        format('REVOKE ALL ON %s, %s FROM PUBLIC', ai._qualified(v.queue_schema, v.queue_table),
               ai._qualified(v.queue_schema, v.queue_failed_table)),
        format('ALTER TABLE %s OWNER TO %I', ai._qualified(v.queue_schema, v.queue_table), v.owner),
        format('ALTER TABLE %s OWNER TO %I', ai._qualified(v.queue_schema, v.queue_failed_table), v.owner)]
    FROM ai._vectorizer(vectorizer_id) v
$$;

-- Run the statements of ai._queue_ddl and record the queues' OIDs in the catalog.
CREATE OR REPLACE FUNCTION ai._make_queues(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    ddl text;
BEGIN
    FOREACH ddl IN ARRAY ai._queue_ddl(v.id) LOOP
        EXECUTE ddl;
    END LOOP;
    UPDATE ai.vectorizer
    SET queue_relid = to_regclass(ai._qualified(v.queue_schema, v.queue_table)),
        failed_relid = to_regclass(ai._qualified(v.queue_schema, v.queue_failed_table))
    WHERE id = v.id;
END
$$;

-- Create the queues in schema ai, where owners may not create tables (SECURITY DEFINER).
-- Safe to expose: it only makes the queues a catalog row names, in ai, for the row's owner,
-- once, keyed by the source's own key columns.
CREATE OR REPLACE FUNCTION ai._create_queues_in_ai(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
BEGIN
    IF v.queue_schema <> 'ai' OR v.queue_relid IS NOT NULL THEN
        RAISE EXCEPTION 'vectorizer % already has queues, or keeps them outside schema ai', v.id
            USING ERRCODE = '55000';
    END IF;
    -- The key's column types go into DDL run with the installer's rights: take them from the
    -- table itself, never from the row.
    IF v.source_pk IS DISTINCT FROM ai._key_columns(v.source_relid) OR NOT ai._owned_by(v.source_relid, v.owner) THEN
        RAISE EXCEPTION 'vectorizer % does not describe its source table''s key', v.id USING ERRCODE = '55000';
    END IF;
    PERFORM ai._make_queues(v.id);
END
$$;

-- Create a vectorizer's queues: in ai (the default) through ai._create_queues_in_ai, elsewhere
-- with the caller's own rights.
CREATE OR REPLACE FUNCTION ai._create_queues(vectorizer_id int) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (ai._vectorizer(vectorizer_id)).queue_schema = 'ai' THEN
        PERFORM ai._create_queues_in_ai(vectorizer_id);
    ELSE
        PERFORM ai._make_queues(vectorizer_id);
    END IF;
END
$$;

-- After fixing the cause of failures: move parked items back to the queue for another set of
-- attempts, and make the items still backing off due now. Returns how many parked items moved.
CREATE OR REPLACE FUNCTION ai.retry_failed(vectorizer_id int) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._managed_vectorizer(vectorizer_id, 'retry its failed items');
    moved bigint;
BEGIN
    EXECUTE format('WITH parked AS (DELETE FROM %s RETURNING %s) INSERT INTO %s (%s) SELECT %s FROM parked',
                   v.failed_relid::regclass, ai._pk_list(v.source_pk), v.queue_relid::regclass,
                   ai._pk_list(v.source_pk), ai._pk_list(v.source_pk));
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('UPDATE %s SET _retry_after = NULL WHERE _retry_after OPERATOR(pg_catalog.>) pg_catalog.now()',
                   v.queue_relid::regclass);
    PERFORM pg_notify('ai_vectorizer', v.id::text);
    RETURN moved;
END
$$;

CREATE OR REPLACE FUNCTION ai.retry_failed(name text) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.retry_failed(ai._vectorizer_id(name)) $$;

-- Rows in a vectorizer's queue (or failed queue), counting at most at_most (NULL: all).
-- SECURITY DEFINER: status readers need counts, not rights on the queues; it counts only a
-- vectorizer's own queues, found by OID, and only while they are plain tables.
CREATE OR REPLACE FUNCTION ai._queue_rows(vectorizer_id int, failed boolean, at_most bigint) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    q oid := CASE WHEN failed THEN v.failed_relid ELSE v.queue_relid END;
    n bigint;
BEGIN
    IF NOT ai._is_plain_table(q) THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT pg_catalog.count(*) FROM (SELECT 1 FROM %s LIMIT $1) q', q::regclass) INTO n USING at_most;
    RETURN n;
END
$$;

-- Items waiting in the queue. exact_count => false (pgai's name; exact => is pgweave's earlier
-- one, and wins when given) stops counting at 10,000 and estimates beyond.
CREATE OR REPLACE FUNCTION ai.vectorizer_queue_pending(vectorizer_id int, exact_count boolean DEFAULT false,
                                                       exact boolean DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    counted boolean := coalesce(exact, exact_count);
    n bigint := ai._queue_rows(vectorizer_id, false, CASE WHEN counted THEN NULL ELSE 10001 END);
BEGIN
    IF n > 10000 AND NOT counted THEN
        SELECT greatest(n, c.reltuples::bigint) INTO n FROM pg_class c
        WHERE c.oid = (ai._vectorizer(vectorizer_id)).queue_relid;
    END IF;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION ai.vectorizer_queue_pending(name text, exact_count boolean DEFAULT false,
                                                       exact boolean DEFAULT NULL) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai.vectorizer_queue_pending(ai._vectorizer_id(name), exact_count, exact) $$;

-- True for an ordinary, non-partitioned table with no rules: what a superuser-owned
-- function may count without running code of the table's owner (a rule could turn a
-- table into a view over the owner's functions; row-level security never applies to the
-- owner of these functions).
CREATE OR REPLACE FUNCTION ai._is_plain_table(relid oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT c.relkind = 'r' AND NOT c.relhasrules AND NOT c.relhassubclass
                     FROM pg_class c WHERE c.oid = relid), false)
$$;
