-- Created once, by alembic revision 0009. Never edited after release.
-- Documents: where a vectorizer may load files and URLs from, and what one document may cost.
-- The engine reads a file as the postgres OS user (PL/Python), whoever owns the vectorizer, and
-- any role may SET ai.* settings: so these bounds live in tables only their owner (the superuser
-- who installed pgweave) writes, and everyone reads.

-- Where documents may come from (ai.loading_uri): a directory (an absolute path; files below it,
-- after symlinks and '..' are resolved) or an http(s) URL prefix ('https://docs.example.com/').
-- Empty by default: no file and no URL may be read until a superuser says so.
CREATE TABLE IF NOT EXISTS ai._document_source (
    location text PRIMARY KEY CHECK (location ~ '^(/|https?://[^/\s@]+/)' AND location !~ '\s'),
    note     text
);

-- Upper bounds on one document.
CREATE TABLE IF NOT EXISTS ai._document_limit (
    name  text PRIMARY KEY CHECK (name IN ('max_document_bytes', 'parse_timeout_seconds',
                                           'fetch_timeout_seconds', 'parse_memory_bytes')),
    value float8 NOT NULL CHECK (value > 0),
    note  text
);
INSERT INTO ai._document_limit (name, value, note) VALUES
    ('max_document_bytes', 52428800, 'bytes of one document, as stored or fetched (50 MiB)'),
    ('parse_timeout_seconds', 60, 'seconds one document may take to parse'),
    ('fetch_timeout_seconds', 30, 'seconds to wait for a byte of a fetched document'),
    ('parse_memory_bytes', 1073741824, 'address space of the process that parses one document (1 GiB)')
ON CONFLICT DO NOTHING;

REVOKE ALL ON ai._document_source, ai._document_limit FROM PUBLIC;
GRANT SELECT ON ai._document_source, ai._document_limit TO PUBLIC;
