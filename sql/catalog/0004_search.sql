-- Created once, by alembic revision 0004. Never edited after release.

-- Embeddings of search queries, so a repeated query costs no model call.
-- key: sha256 of the login role and of (implementation, model, resolved host or base_url,
-- dimensions, options, query text), computed by ai._query_cache_key(); the query text itself
-- is never stored. Rows are reached only through the SECURITY DEFINER functions of
-- sql/functions/50_search.sql: row-level security without a policy shows them to nobody else,
-- even to roles that ai.grant_ai_usage gave SELECT on every ai table.
CREATE TABLE IF NOT EXISTS ai._query_embedding_cache (
    key       text PRIMARY KEY,
    embedding real[] NOT NULL,
    last_used timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);   -- room for HOT updates of last_used
ALTER TABLE ai._query_embedding_cache ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON ai._query_embedding_cache FROM PUBLIC;
