-- Re-applied on every install: the vocabulary every vectorizer file below uses.
-- A row travels: trigger (31_trigger) → queue (32_queue) → engine (34_engine, with
-- plpython/pgweave_db/engine.py) → store and view (33_store) → search (50_search).
-- 35_scheduler drives the engine in the background, 36_lifecycle creates and drops
-- vectorizers, 37_follow follows renames and drops of their tables, 40_status reports.
--
-- Identity: a vectorizer knows its source, store, view and queues by OID (ai.vectorizer.*_relid);
-- the name columns beside them are for display and follow renames. Identifiers reach dynamic
-- SQL only as regclass values (which quote and qualify themselves) or through ai._qualified.

-- Quote a schema-qualified name; the one place dynamic SQL here quotes a pair of names.
-- PL/pgSQL: a SQL function with a SET clause (every ai function pins search_path) is parsed
-- and planned again in each transaction that calls it; searches call this one every time.
CREATE OR REPLACE FUNCTION ai._qualified(schema_name name, object_name name) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN format('%I.%I', schema_name, object_name);
END
$$;

-- A relation's schema-qualified, quoted name (NULL when it is gone).
CREATE OR REPLACE FUNCTION ai._relation(relid oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ai._qualified(n.nspname, c.relname)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = relid
$$;

-- pgvector's type, schema-qualified (functions here run with a pinned search_path).
CREATE OR REPLACE FUNCTION ai._vector_type() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('%I.vector', n.nspname) FROM pg_catalog.pg_extension e
    JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'
$$;

-- The vectorizer's id for a name (or error saying which names exist).
CREATE OR REPLACE FUNCTION ai._vectorizer_id(vectorizer_name text) RETURNS int
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_id int;
BEGIN
    IF vectorizer_name IS NULL THEN
        RAISE EXCEPTION 'vectorizer name must not be NULL' USING ERRCODE = '22004',
            HINT = 'list them with SELECT id, name FROM ai.vectorizer';
    END IF;
    SELECT v.id INTO found_id FROM ai.vectorizer v WHERE v.name = vectorizer_name;
    IF found_id IS NULL THEN   -- pgai's default name for it: <store schema>_<store table>
        SELECT min(v.id) INTO found_id FROM ai.vectorizer v
        WHERE v.target_schema || '_' || v.target_table = vectorizer_name HAVING count(*) = 1;
    END IF;
    IF found_id IS NULL THEN
        RAISE EXCEPTION 'vectorizer "%" does not exist', vectorizer_name
            USING ERRCODE = '42704', SCHEMA = 'ai', TABLE = 'vectorizer',
                  HINT = coalesce('existing vectorizers: ' ||
                      (SELECT string_agg(v.name, ', ' ORDER BY v.name) FROM ai.vectorizer v),
                      'create one with ai.create_vectorizer(...)');
    END IF;
    RETURN found_id;
END
$$;

-- The vectorizer's catalog row for an id (or error).
CREATE OR REPLACE FUNCTION ai._vectorizer(vectorizer_id int) RETURNS ai.vectorizer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer;
BEGIN
    IF vectorizer_id IS NULL THEN
        RAISE EXCEPTION 'vectorizer id must not be NULL' USING ERRCODE = '22004',
            HINT = 'list them with SELECT id, name FROM ai.vectorizer';
    END IF;
    SELECT * INTO v FROM ai.vectorizer WHERE id = vectorizer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'vectorizer % does not exist', vectorizer_id USING ERRCODE = '42704',
            SCHEMA = 'ai', TABLE = 'vectorizer', HINT = 'list them with SELECT id, name FROM ai.vectorizer';
    END IF;
    RETURN v;
END
$$;

-- Refuse a role that may not manage (or process) a vectorizer: only members of its owner
-- (the source table's owner) and superusers may. Returns the catalog row.
CREATE OR REPLACE FUNCTION ai._managed_vectorizer(vectorizer_id int, action text) RETURNS ai.vectorizer
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v ai.vectorizer := ai._vectorizer(vectorizer_id);
BEGIN
    IF NOT pg_catalog.pg_has_role(current_user, v.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'only the owner of vectorizer "%" (role %) or a superuser may %', v.name, v.owner, action
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('run it as %I, or have a superuser GRANT %I TO %I', v.owner, v.owner, current_user);
    END IF;
    RETURN v;
END
$$;

-- Column list of the source key, e.g. "id", "lang" (prefix: "s."); one place to quote them.
CREATE OR REPLACE FUNCTION ai._pk_list(source_pk jsonb, prefix text DEFAULT '') RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(prefix || quote_ident(k->>'attname'), ', ' ORDER BY (k->>'pknum')::int)
    FROM jsonb_array_elements(source_pk) k
$$;

-- Join condition of the source key between two aliases, e.g. a."id" = b."id".
CREATE OR REPLACE FUNCTION ai._pk_join(source_pk jsonb, a text, b text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('%s.%I OPERATOR(pg_catalog.=) %s.%I', a, k->>'attname', b, k->>'attname'), ' AND '
                      ORDER BY (k->>'pknum')::int)
    FROM jsonb_array_elements(source_pk) k
$$;

-- Column definitions of the source key, e.g. "id" bigint NOT NULL. The types are base types
-- (ai._key_columns resolves domains), so that no function of the table's owner runs when a
-- key is copied into or compared in a queue or store.
CREATE OR REPLACE FUNCTION ai._pk_columns(source_pk jsonb, not_null boolean) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('%I %s%s', k->>'attname', k->>'typname',
                             CASE WHEN not_null THEN ' NOT NULL' ELSE '' END), ', '
                      ORDER BY (k->>'pknum')::int)
    FROM jsonb_array_elements(source_pk) k
$$;

-- The primary key of a table as [{"attname", "typname", "pknum"}] in key order, each type
-- its base type (a domain's CHECK may call a function of the table's owner); NULL without one.
CREATE OR REPLACE FUNCTION ai._key_columns(source regclass) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE key AS (
        SELECT a.attname, k.pknum, a.atttypid AS typid, a.atttypmod AS typmod, 0 AS depth
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pknum)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = source AND i.indisprimary
    ), base AS (
        SELECT * FROM key
        UNION ALL
        SELECT b.attname, b.pknum, t.typbasetype, t.typtypmod, b.depth + 1
        FROM base b JOIN pg_type t ON t.oid = b.typid
        WHERE t.typtype = 'd' AND b.depth < 32
    )
    SELECT jsonb_agg(jsonb_build_object('attname', b.attname, 'typname', format_type(b.typid, b.typmod),
                                        'pknum', b.pknum) ORDER BY b.pknum)
    FROM base b JOIN pg_type t ON t.oid = b.typid
    WHERE t.typtype <> 'd'
$$;

-- The identifiers a formatting template refers to, besides $chunk ($$ is a literal $).
CREATE OR REPLACE FUNCTION ai._template_columns(template text) RETURNS name[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(DISTINCT coalesce(m[1], m[2])::name)
                    FILTER (WHERE coalesce(m[1], m[2]) <> 'chunk'), '{}')
    FROM regexp_matches(regexp_replace(template, '\$\$', '', 'g'),
                        '\$(?:\{([_A-Za-z][_A-Za-z0-9]*)\}|([_A-Za-z][_A-Za-z0-9]*))', 'g') m
$$;

-- The source columns whose values a vectorizer embeds: the loaded column and the template's.
CREATE OR REPLACE FUNCTION ai._embedded_columns(config jsonb) RETURNS name[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_append(ai._template_columns(coalesce(config->'formatting'->>'template', '$chunk')),
                        (config->'loading'->>'column_name')::name)
$$;

-- Names a key column may not have: the store's and queues' own columns.
CREATE OR REPLACE FUNCTION ai._reserved_column(column_name name) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT column_name IN ('embedding_uuid', 'chunk_seq', 'chunk', 'embedding', 'embedded_md5', 'loading_retries')
           OR column_name LIKE '\_%'
$$;

-- True when a relation exists and belongs to the role (checked before the installer's
-- functions change a relation a catalog row names).
CREATE OR REPLACE FUNCTION ai._owned_by(relid oid, owner name) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT c.relowner = (SELECT r.oid FROM pg_roles r WHERE r.rolname = owner)
                     FROM pg_class c WHERE c.oid = relid), false)
$$;
