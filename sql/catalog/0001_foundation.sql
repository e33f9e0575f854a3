-- Created once, by alembic revision 0001. Never edited after release.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS plpython3u;
CREATE SCHEMA IF NOT EXISTS ai;

-- What is installed: one row, written by every install in the same transaction as the code.
CREATE TABLE IF NOT EXISTS ai.pgweave_install (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version      text NOT NULL,
    code_hash    text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);

-- The in-database Python (plpython/pgweave_db), one row per module; read by ai._load_python().
CREATE TABLE IF NOT EXISTS ai._python_module (
    name       text PRIMARY KEY,
    is_package boolean NOT NULL,
    source     text NOT NULL
);

REVOKE ALL ON ai.pgweave_install, ai._python_module FROM PUBLIC;
GRANT SELECT ON ai.pgweave_install, ai._python_module TO PUBLIC;
GRANT USAGE ON SCHEMA ai TO PUBLIC;
