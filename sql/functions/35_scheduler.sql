-- Re-applied on every install: background processing, one scheduler per database.
--
-- `pgweave install` (a superuser) schedules `CALL ai._scheduler(slot)` with pg_cron for slots
-- 1..ai._scheduler.backends, every minute, in whatever database pg_cron lives
-- (cron.schedule_in_database), and records that here. Each run stays resident for
-- loop_seconds (a little over a minute, so the next start queues behind it and coverage has
-- no gap) and goes round the vectorizers it serves (ai._serves: spread over the slots, more
-- slots for a higher processing concurrency): for each one in background mode, not disabled,
-- that has due items, one batch, least recently served first. A round serves every vectorizer once, so one large backlog never
-- starves the others, and N vectorizers need `backends` connections, not N, nor N of
-- pg_cron's cron.max_running_jobs. An idle round sleeps poll_interval. The batches run with
-- each vectorizer's owner's rights (34_engine). A heartbeat in ai._scheduler.last_seen tells
-- status that background processing runs.

-- The resident loop of one scheduler backend.
CREATE OR REPLACE PROCEDURE ai._scheduler(slot int DEFAULT 1)
LANGUAGE plpgsql
AS $$
DECLARE
    s ai._scheduler;
    deadline timestamptz;
    beat timestamptz := '2000-01-01';
    vid int;
    worked bigint;
    r pg_catalog.jsonb;
BEGIN
    SELECT * INTO s FROM ai._scheduler;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    deadline := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => s.loop_seconds);
    WHILE pg_catalog.clock_timestamp() OPERATOR(pg_catalog.<) deadline LOOP
        IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) beat OPERATOR(pg_catalog.>) interval '5 seconds' THEN
            UPDATE ai._scheduler SET last_seen = pg_catalog.now();
            beat := pg_catalog.clock_timestamp();
            COMMIT;
        END IF;
        worked := 0;
        FOR vid IN
            SELECT v.id FROM ai.vectorizer v
            LEFT JOIN ai._vectorizer_progress p ON p.vectorizer_id OPERATOR(pg_catalog.=) v.id
            WHERE ai._in_background(v.config) AND ai._serves(slot, s.backends, v.id, v.config)
            ORDER BY p.last_run_at NULLS FIRST, v.id
        LOOP
            IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) beat OPERATOR(pg_catalog.>) interval '5 seconds' THEN
                UPDATE ai._scheduler SET last_seen = pg_catalog.now();   -- also between long batches
                beat := pg_catalog.clock_timestamp();
            END IF;
            BEGIN
                r := ai._engine_step(vid, '{}', true, 'background', only_if_work => true);
                worked := worked OPERATOR(pg_catalog.+) coalesce((r->>'items')::bigint, 0);
            EXCEPTION WHEN OTHERS THEN
                NULL;   -- recorded by the engine where it could be; serve the next vectorizer
            END;
            COMMIT;
        END LOOP;
        IF worked OPERATOR(pg_catalog.=) 0 THEN
            PERFORM pg_catalog.pg_sleep(s.poll_interval);
            COMMIT;
        END IF;
    END LOOP;
END
$$;

-- Whether scheduler slot `slot` (of `backends`) serves a vectorizer: each vectorizer has a home
-- slot ((id - 1) mod backends), and its processing concurrency n lets the n slots from its home
-- on serve it too. So the vectorizers spread over the backends, and a big one can take more.
CREATE OR REPLACE FUNCTION ai._serves(slot int, backends int, vectorizer_id int, config jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ((slot - 1 - (vectorizer_id - 1) % backends + backends) % backends)
           < least(coalesce((config->'processing'->>'concurrency')::int, 1), backends)
$$;

-- True for a vectorizer the scheduler serves: background scheduling (the default), not disabled.
CREATE OR REPLACE FUNCTION ai._in_background(config jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT config->'scheduling'->>'implementation' IS DISTINCT FROM 'none'
       AND NOT coalesce((config->'scheduling'->>'disabled')::boolean, false)
$$;

-- Who processes a vectorizer, in words: 'background', 'worker <host:pid> 3 s ago', or
-- 'nobody: <why and the fix>'. The status view and create_vectorizer's notice use it.
CREATE OR REPLACE FUNCTION ai._processed_by(vectorizer_id int) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
    s ai._scheduler;
    w ai._worker_seen;
BEGIN
    SELECT * INTO w FROM ai._worker_seen ws
    WHERE ws.seen_at > now() - interval '2 minutes'
      AND (ws.vectorizer_ids IS NULL OR v.id = ANY(ws.vectorizer_ids))
      AND pg_has_role(ws.role, v.owner, 'MEMBER')
    ORDER BY ws.seen_at DESC LIMIT 1;
    IF (v.config->'scheduling'->>'disabled')::boolean THEN
        RETURN 'nobody: its schedule is disabled; SELECT ai.enable_vectorizer_schedule(' || v.id || ')';
    END IF;
    IF v.config->'scheduling'->>'implementation' = 'none' THEN
        IF w.worker IS NOT NULL THEN
            RETURN format('worker %s %s s ago', w.worker, round(extract(epoch FROM now() - w.seen_at))::int);
        END IF;
        RETURN 'nobody: it has scheduling_none and no pgweave worker was seen; run `pgweave worker DSN` or CALL ai.execute_vectorizer('
               || v.id || ')';
    END IF;
    SELECT * INTO s FROM ai._scheduler;
    IF s.last_seen > now() - interval '5 minutes' THEN   -- a heartbeat between batches; one batch may be long
        RETURN 'background';
    END IF;
    IF w.worker IS NOT NULL THEN
        RETURN format('worker %s %s s ago', w.worker, round(extract(epoch FROM now() - w.seen_at))::int);
    END IF;
    IF s.singleton IS NULL THEN
        RETURN 'nobody: background processing was never arranged in this database; run `pgweave install DSN` as a superuser on a server with pg_cron in shared_preload_libraries, or run `pgweave worker DSN`';
    END IF;
    IF s.problem IS NOT NULL THEN
        RETURN 'nobody: ' || s.problem;
    END IF;
    IF s.arranged_at > now() - interval '90 seconds' THEN
        RETURN 'background (starting within a minute)';
    END IF;
    RETURN format('nobody: the scheduler in database %s has not run for %s; check cron.job_run_details there, or run `pgweave worker DSN`',
                  coalesce(s.cron_database, '?'),
                  coalesce(date_trunc('second', now() - s.last_seen)::text, 'ever'));
END
$$;

-- A `pgweave worker` process says it is alive (every poll), for the vectorizers it serves
-- (NULL: every one it may process). SECURITY DEFINER: workers need no write right on the
-- table, and a role can only speak for itself.
CREATE OR REPLACE FUNCTION ai._worker_heartbeat(worker text, vectorizer_ids int[]) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO ai._worker_seen (worker, role, vectorizer_ids, seen_at)
    VALUES (left(worker, 200), session_user, vectorizer_ids, now())
    ON CONFLICT (worker) DO UPDATE SET role = excluded.role, vectorizer_ids = excluded.vectorizer_ids,
                                       seen_at = excluded.seen_at;
    DELETE FROM ai._worker_seen WHERE seen_at < now() - interval '1 day';
$$;

-- Record where background processing runs (by `pgweave install`, which holds a superuser
-- connection to the cron database), or why it could not be arranged.
CREATE OR REPLACE FUNCTION ai._record_scheduler(cron_database name, job_names text[], backends int,
                                                problem text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO ai._scheduler (singleton, cron_database, job_names, backends, arranged_at, problem)
    VALUES (true, cron_database, job_names, coalesce(backends, 2), now(), problem)
    ON CONFLICT (singleton) DO UPDATE SET cron_database = excluded.cron_database,
        job_names = excluded.job_names, backends = excluded.backends,
        arranged_at = excluded.arranged_at, problem = excluded.problem;
$$;

-- Turn a vectorizer's background processing on or off (the queue keeps filling either way;
-- `pgweave worker` honours it too).
CREATE OR REPLACE FUNCTION ai._set_schedule_active(vectorizer_id int, active boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._managed_vectorizer(vectorizer_id, 'change its schedule');
BEGIN
    UPDATE ai.vectorizer
    SET config = CASE WHEN active THEN config #- '{scheduling,disabled}'
                      ELSE jsonb_set(config, '{scheduling,disabled}', 'true') END
    WHERE id = v.id;
END
$$;

-- Stop a vectorizer's background processing.
CREATE OR REPLACE FUNCTION ai.disable_vectorizer_schedule(vectorizer_id int) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(vectorizer_id, false) $$;

CREATE OR REPLACE FUNCTION ai.disable_vectorizer_schedule(name text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(ai._vectorizer_id(name), false) $$;

-- Let a vectorizer's background processing start again.
CREATE OR REPLACE FUNCTION ai.enable_vectorizer_schedule(vectorizer_id int) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(vectorizer_id, true) $$;

CREATE OR REPLACE FUNCTION ai.enable_vectorizer_schedule(name text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$ SELECT ai._set_schedule_active(ai._vectorizer_id(name), true) $$;
