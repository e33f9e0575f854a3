-- Created once, by alembic revision 0005. Never edited after release.
-- The execution model: vectorizers known by OID and owned by their source's owner; one
-- scheduler per database instead of one pg_cron job per vectorizer.

-- Identity by OID: names in the catalog are kept for display and follow renames; every
-- lookup that decides what a vectorizer reads or writes goes by these.
ALTER TABLE ai.vectorizer
    ADD COLUMN IF NOT EXISTS source_relid oid,
    ADD COLUMN IF NOT EXISTS target_relid oid,
    ADD COLUMN IF NOT EXISTS view_relid oid,
    ADD COLUMN IF NOT EXISTS queue_relid oid,
    ADD COLUMN IF NOT EXISTS failed_relid oid;
UPDATE ai.vectorizer SET
    source_relid = to_regclass(format('%I.%I', source_schema, source_table)),
    target_relid = to_regclass(format('%I.%I', target_schema, target_table)),
    view_relid   = to_regclass(format('%I.%I', view_schema, view_name)),
    queue_relid  = to_regclass(format('%I.%I', queue_schema, queue_table)),
    failed_relid = to_regclass(format('%I.%I', queue_schema, queue_failed_table));
-- Names derived from the id, so that no row can name another vectorizer's function or queue.
ALTER TABLE ai.vectorizer ADD CONSTRAINT vectorizer_trigger_name_is_its_own
    CHECK (trigger_name = '_vectorizer_src_trg_' || id);
ALTER TABLE ai.vectorizer ADD CONSTRAINT vectorizer_queue_names_are_its_own
    CHECK (queue_schema <> 'ai' OR (queue_table = '_vectorizer_q_' || id
                                    AND queue_failed_table = '_vectorizer_q_failed_' || id));
CREATE UNIQUE INDEX IF NOT EXISTS vectorizer_source_relid_target_relid
    ON ai.vectorizer (source_relid, target_relid);

-- Where a backlog began and when the engine last ran, for progress that tells the truth:
-- backlog_base is items_processed when the queue was last seen empty.
ALTER TABLE ai._vectorizer_progress
    ADD COLUMN IF NOT EXISTS backlog_base bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS backlog_started_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_run_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_run_by text;

-- The database's background scheduler: pg_cron jobs (in whatever database pg_cron lives)
-- that run CALL ai._scheduler(slot) here. Written by `pgweave install`; one row.
CREATE TABLE IF NOT EXISTS ai._scheduler (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    cron_database name,            -- where the jobs live (cron.database_name)
    job_names     text[] NOT NULL DEFAULT '{}',
    backends      int NOT NULL DEFAULT 2 CHECK (backends BETWEEN 1 AND 64),
    loop_seconds  int NOT NULL DEFAULT 62 CHECK (loop_seconds BETWEEN 5 AND 3600),
    poll_interval float8 NOT NULL DEFAULT 0.25 CHECK (poll_interval BETWEEN 0.05 AND 60),
    arranged_at   timestamptz,
    problem       text,            -- why background processing could not be arranged
    last_seen     timestamptz      -- heartbeat of any scheduler backend
);

-- `pgweave worker` processes seen lately (a heartbeat per worker process).
CREATE TABLE IF NOT EXISTS ai._worker_seen (
    worker         text PRIMARY KEY,          -- host:pid
    role           name NOT NULL,
    vectorizer_ids int[],                     -- NULL: all it may process
    seen_at        timestamptz NOT NULL DEFAULT now()
);

REVOKE ALL ON ai._scheduler, ai._worker_seen FROM PUBLIC;
GRANT SELECT ON ai._scheduler, ai._worker_seen TO PUBLIC;
-- Catalog writes by owners: at creation every column; later only what owners may change.
REVOKE ALL ON ai.vectorizer, ai._vectorizer_progress, ai._vectorizer_errors FROM PUBLIC;
GRANT SELECT ON ai.vectorizer, ai._vectorizer_progress TO PUBLIC;

-- Owners manage their own vectorizers: roles granted ai usage write catalog rows, progress
-- and errors only for vectorizers whose owner they are a member of, and only for a source
-- table that role owns. Everyone may read the catalog and progress (status); errors only the
-- owner's members (messages may quote the source's data). Superusers are not subject to this.
ALTER TABLE ai.vectorizer ENABLE ROW LEVEL SECURITY;
CREATE POLICY pgweave_read ON ai.vectorizer FOR SELECT USING (true);
-- A new row may name only relations its owner owns (the engine and the installer's functions
-- act on them; queues are added by ai._create_queues, which checks the row again).
CREATE POLICY pgweave_owner_insert ON ai.vectorizer FOR INSERT WITH CHECK (
    pg_catalog.pg_has_role(current_user, owner, 'MEMBER')
    AND owner = (SELECT c.relowner::regrole::name FROM pg_catalog.pg_class c WHERE c.oid = source_relid)
    AND owner = (SELECT c.relowner::regrole::name FROM pg_catalog.pg_class c WHERE c.oid = target_relid)
    AND owner = (SELECT c.relowner::regrole::name FROM pg_catalog.pg_class c WHERE c.oid = view_relid)
    AND queue_relid IS NULL AND failed_relid IS NULL);
CREATE POLICY pgweave_owner_update ON ai.vectorizer FOR UPDATE
    USING (pg_catalog.pg_has_role(current_user, owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(current_user, owner, 'MEMBER')
                AND owner = (SELECT c.relowner::regrole::name FROM pg_catalog.pg_class c WHERE c.oid = source_relid));
CREATE POLICY pgweave_owner_delete ON ai.vectorizer FOR DELETE
    USING (pg_catalog.pg_has_role(current_user, owner, 'MEMBER'));

ALTER TABLE ai._vectorizer_progress ENABLE ROW LEVEL SECURITY;
CREATE POLICY pgweave_read ON ai._vectorizer_progress FOR SELECT USING (true);
CREATE POLICY pgweave_owner_write ON ai._vectorizer_progress FOR ALL
    USING (EXISTS (SELECT 1 FROM ai.vectorizer v WHERE v.id = vectorizer_id
                   AND pg_catalog.pg_has_role(current_user, v.owner, 'MEMBER')))
    WITH CHECK (EXISTS (SELECT 1 FROM ai.vectorizer v WHERE v.id = vectorizer_id
                        AND pg_catalog.pg_has_role(current_user, v.owner, 'MEMBER')));

ALTER TABLE ai._vectorizer_errors ENABLE ROW LEVEL SECURITY;
CREATE POLICY pgweave_owner_all ON ai._vectorizer_errors FOR ALL
    USING (EXISTS (SELECT 1 FROM ai.vectorizer v WHERE v.id = vectorizer_id
                   AND pg_catalog.pg_has_role(current_user, v.owner, 'MEMBER')))
    WITH CHECK (EXISTS (SELECT 1 FROM ai.vectorizer v WHERE v.id = vectorizer_id
                        AND pg_catalog.pg_has_role(current_user, v.owner, 'MEMBER')));
