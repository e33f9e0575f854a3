-- Created once, by alembic revision 0010. Never edited after release.
-- Stores keep their embeddings in the row: a 384-dimension vector (1.5 kB) beside an 800-character
-- chunk passes PostgreSQL's default TOAST threshold (about 2 kB), so four rows in ten had their
-- embedding moved to the TOAST table, at the cost of a second insert when stored and a second
-- read whenever a search returns its distance. New stores are created with this setting
-- (ai._create_store_and_view); this gives it to the stores that exist. It applies to rows
-- written from now on (VACUUM FULL or re-embedding moves the old ones back in).
DO $$
DECLARE
    store regclass;
BEGIN
    FOR store IN SELECT v.target_relid::regclass FROM ai.vectorizer v
                 WHERE v.target_relid IS NOT NULL
                   AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = v.target_relid)
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s SET (toast_tuple_target = 8160)', store);
    END LOOP;
END
$$;
