-- Created once, by alembic revision 0005. Never edited after release.
-- The execution model: vectorizers known by OID, one scheduler per database.
SELECT 1;
