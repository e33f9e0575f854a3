-- Created once, by alembic revision 0008. Never edited after release.
-- Changing a vectorizer without downtime: a change that alters embeddings builds a new
-- generation (an ordinary vectorizer on the same source, with its own store and queue)
-- beside the live one, which it replaces once it has caught up (sql/functions/38_alter.sql).

-- generation_of: for a generation being built, the live vectorizer it will replace (NULL for
-- a live one). generation_reuse: whether it may take the embedding of an unchanged chunk from
-- the live store (false for ai.reembed: every chunk embedded anew).
ALTER TABLE ai.vectorizer
    ADD COLUMN IF NOT EXISTS generation_of int,
    ADD COLUMN IF NOT EXISTS generation_reuse boolean NOT NULL DEFAULT true;
CREATE UNIQUE INDEX IF NOT EXISTS vectorizer_one_generation_building
    ON ai.vectorizer (generation_of) WHERE generation_of IS NOT NULL;
