"""Privilege boundaries of the execution model, each tried by a role that must not cross it,
with the background scheduler (a superuser's pg_cron job) running in the same database.

Roles: bg_owner (APP_OWNER) owns the source tables (not a superuser); eve is granted ai usage and may
create in schema public; mallory has nothing but CONNECT (and TEMP, as PUBLIC does).
"""

from __future__ import annotations

import psycopg
import pytest

from pgweave_testing.helpers import APP_OWNER, conn_until, role_dsn

EMB = "embedding => ai.embedding_ollama('all-minilm', 384)"


@pytest.fixture(scope="module")
def roles(background_db):
    with psycopg.connect(background_db, autocommit=True) as conn:
        for role in ("eve", "mallory"):
            conn.execute(f"DROP ROLE IF EXISTS {role}")
            conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute("SELECT ai.grant_ai_usage('eve')")
        conn.execute("GRANT CREATE, USAGE ON SCHEMA public TO eve")
        conn.execute("CREATE SCHEMA mal AUTHORIZATION mallory")
    with psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True) as conn:
        conn.execute("CREATE TABLE app.spy_log (who name, what text)")
        conn.execute("GRANT INSERT ON app.spy_log TO PUBLIC")
        conn.execute("GRANT USAGE ON SCHEMA app TO PUBLIC")
    yield
    with psycopg.connect(background_db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA mal CASCADE")
        conn.execute("DROP OWNED BY eve, mallory CASCADE")
        conn.execute("DROP ROLE eve")
        conn.execute("DROP ROLE mallory")


def _vectorizer(dsn: str, table: str, columns: str = "id int PRIMARY KEY, body text") -> int:
    """As the owner: a table with one row and a vectorizer; returns its id once it is synced."""
    with psycopg.connect(role_dsn(dsn, APP_OWNER), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE app.{table} ({columns})")
        conn.execute(f"INSERT INTO app.{table} (id, body) VALUES (1, 'the secret text of {table}')")
        vid = conn.execute(f"""SELECT ai.create_vectorizer('app.{table}'::regclass,
                               loading => ai.loading_column('body'), {EMB})""").fetchone()[0]
        conn_until(conn, f"SELECT count(*) = 1 FROM app.{table}_embedding_store", 120)
    return vid


def _spied(dsn: str) -> set[tuple[str, bool]]:
    """Who the owner's spy functions ran as, and whether that role is a superuser."""
    with psycopg.connect(dsn) as conn:
        return set(conn.execute("""SELECT DISTINCT l.who, r.rolsuper FROM app.spy_log l
                                   JOIN pg_roles r ON r.rolname = l.who"""))


def test_a_same_named_trigger_on_a_temp_table_does_not_repoint_a_vectorizer(background_db, roles):
    vid = _vectorizer(background_db, "repoint")
    with psycopg.connect(role_dsn(background_db, "mallory"), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE decoy (id int)")
        conn.execute("""CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql
                        AS $$ BEGIN RETURN NULL; END $$""")
        conn.execute(f"CREATE TRIGGER _vectorizer_src_trg_{vid} AFTER INSERT ON decoy "
                     "FOR EACH ROW EXECUTE FUNCTION pg_temp.noop()")
        conn.execute("ALTER TABLE decoy ADD COLUMN body text")
    with psycopg.connect(background_db) as conn:
        source, table, rls = conn.execute("""
            SELECT v.source_relid::regclass::text, v.source_table, c.relrowsecurity FROM ai.vectorizer v
            JOIN pg_class c ON c.oid = v.target_relid WHERE v.id = %s""", (vid,)).fetchone()
    assert (source, table, rls) == ("app.repoint", "repoint", True)


def test_altering_a_partition_does_not_repoint_its_partitioned_source(background_db, roles):
    with psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True) as conn:
        conn.execute("CREATE TABLE app.parted (id int PRIMARY KEY, body text) PARTITION BY RANGE (id)")
        conn.execute("CREATE TABLE app.parted_1 PARTITION OF app.parted FOR VALUES FROM (0) TO (100)")
        vid = conn.execute(f"""SELECT ai.create_vectorizer('app.parted'::regclass,
                               loading => ai.loading_column('body'), {EMB})""").fetchone()[0]
        conn.execute("ALTER TABLE app.parted_1 SET (fillfactor = 90)")
        assert conn.execute("SELECT source_relid::regclass::text FROM ai.vectorizer WHERE id = %s",
                            (vid,)).fetchone()[0] == "app.parted"
        with pytest.raises(psycopg.errors.WrongObjectType, match="is a partition"):
            conn.execute(f"""SELECT ai.create_vectorizer('app.parted_1'::regclass,
                             loading => ai.loading_column('body'), {EMB})""")


def test_no_role_can_attach_a_vectorizers_trigger_function_elsewhere(background_db, roles):
    vid = _vectorizer(background_db, "attach")
    with psycopg.connect(role_dsn(background_db, "eve"), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.eve_t (id int PRIMARY KEY)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CREATE TRIGGER flood AFTER TRUNCATE ON public.eve_t "
                         f"EXECUTE FUNCTION ai._vectorizer_src_trg_{vid}()")
    # Even its owner cannot make it empty the store from another table.
    with psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True) as conn:
        conn.execute("CREATE TABLE app.other (id int PRIMARY KEY)")
        conn.execute(f"CREATE TRIGGER misuse AFTER TRUNCATE ON app.other "
                     f"EXECUTE FUNCTION ai._vectorizer_src_trg_{vid}()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="serves only its source"):
            conn.execute("TRUNCATE app.other")
        assert conn.execute("SELECT count(*) FROM app.attach_embedding_store").fetchone()[0] == 1


def test_a_domain_keys_check_never_runs_as_the_superuser(background_db, roles):
    with psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True) as conn:
        conn.execute("""CREATE FUNCTION app.spy(v int) RETURNS boolean LANGUAGE plpgsql AS $$
                        BEGIN INSERT INTO app.spy_log VALUES (current_user, 'domain check'); RETURN true; END $$""")
        conn.execute("CREATE DOMAIN app.guarded AS int CHECK (app.spy(VALUE))")
    _vectorizer(background_db, "domained", "id app.guarded PRIMARY KEY, body text")
    with psycopg.connect(background_db) as conn:
        assert conn.execute("""SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                               WHERE attrelid = (SELECT queue_relid FROM ai.vectorizer WHERE source_table = 'domained')
                                 AND attname = 'id'""").fetchone()[0] == "integer"
    assert all(not is_super for _, is_super in _spied(background_db))


def test_owner_code_in_the_engines_path_runs_with_the_owners_rights_only(background_db, roles):
    vid = _vectorizer(background_db, "escape")
    with psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True) as conn:
        conn.execute("""CREATE FUNCTION app.escape() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO app.spy_log VALUES (current_user, 'store trigger');
                BEGIN
                    RESET ROLE;
                    INSERT INTO app.spy_log VALUES (current_user, 'reset role worked');
                EXCEPTION WHEN OTHERS THEN
                    INSERT INTO app.spy_log VALUES (current_user, 'reset role refused');
                END;
                BEGIN
                    EXECUTE 'ALTER ROLE bg_owner SUPERUSER';
                EXCEPTION WHEN OTHERS THEN
                    INSERT INTO app.spy_log VALUES (current_user, 'superuser refused');
                END;
                RETURN NULL;
            END $$""")
        conn.execute("CREATE TRIGGER escape AFTER INSERT ON app.escape_embedding_store "
                     "FOR EACH ROW EXECUTE FUNCTION app.escape()")
        conn.execute("SELECT ai.disable_vectorizer_schedule(%s)", (vid,))   # only the superuser's CALL runs it
        conn.execute("UPDATE app.escape SET body = 'changed, so the engine writes the store'")
    with psycopg.connect(background_db, autocommit=True) as conn:   # a superuser drives it
        conn.execute("CALL ai.execute_vectorizer(%s)", (vid,))
        whats = {r[0] for r in conn.execute("SELECT what FROM app.spy_log WHERE what <> 'domain check'")}
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (APP_OWNER,)).fetchone()[0] is False
    assert whats == {"store trigger", "reset role refused", "superuser refused"}, _errors(background_db)
    assert all(not is_super for _, is_super in _spied(background_db))


SHADOWED = [("now", "", "timestamptz", "pg_catalog.now()"),
            ("power", "a float8, b float8", "float8", "1"),
            ("format", "a text, VARIADIC b text[]", "text", "a"),
            ("hashtext", "a text", "int", "1"),
            ("count", "a bigint", "bigint", "1")]


def test_functions_in_a_schema_others_can_write_do_not_shadow_pgwaves(background_db, roles):
    vid = _vectorizer(background_db, "shadowed")
    with psycopg.connect(role_dsn(background_db, "eve"), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.shadow_log (who name)")
        conn.execute("GRANT INSERT ON public.shadow_log TO PUBLIC")
        for name, args, result, value in SHADOWED:
            conn.execute(f"""CREATE FUNCTION public.{name}({args}) RETURNS {result} LANGUAGE plpgsql AS $$
                             BEGIN INSERT INTO public.shadow_log VALUES (current_user); RETURN {value}; END $$""")
    with psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True) as conn:
        conn.execute("SELECT ai.disable_vectorizer_schedule(%s)", (vid,))   # only the superuser's CALL runs it
        conn.execute("UPDATE app.shadowed SET body = 'changed again'")
    with psycopg.connect(background_db, autocommit=True) as conn:
        conn.execute("SET search_path = public, pg_catalog")
        conn.execute("CALL ai.execute_vectorizer(%s)", (vid,))
        conn.execute("SELECT * FROM ai.vectorizer_status").fetchall()
        conn.execute("SELECT * FROM ai.vectorizer_errors").fetchall()
        conn.execute("SELECT ai.vectorizer_queue_pending(%s, exact => true)", (vid,))
        assert conn.execute("SELECT count(*) FROM public.shadow_log").fetchone()[0] == 0
        assert conn.execute("SELECT chunk FROM app.shadowed_embedding_store").fetchone()[0] == "changed again"


def test_a_role_that_does_not_own_the_source_cannot_manage_its_vectorizer(background_db, roles):
    vid = _vectorizer(background_db, "managed")
    with psycopg.connect(role_dsn(background_db, "eve"), autocommit=True) as conn:
        for call in (f"CALL ai.execute_vectorizer({vid})", f"SELECT ai.drop_vectorizer({vid})",
                     f"SELECT ai.retry_failed({vid})", f"SELECT ai.disable_vectorizer_schedule({vid})"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only the owner of vectorizer") as info:
                conn.execute(call)
            assert APP_OWNER in info.value.diag.message_hint
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("""INSERT INTO ai.vectorizer (name, source_schema, source_table, source_pk, target_schema,
                                target_table, view_schema, view_name, queue_schema, queue_table, queue_failed_table,
                                trigger_name, config, owner, source_relid)
                            VALUES ('forged', 'app', 'managed', '[]', 'public', 'x', 'public', 'y', 'public', 'q', 'f',
                                    't', '{}', 'eve', 'app.managed'::regclass)""")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT ai._vectorizer_engine_{vid}('claim', '{{}}')")
    with psycopg.connect(role_dsn(background_db, "mallory"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CALL ai.execute_vectorizer({vid})")


def test_an_owner_manages_the_whole_lifecycle_without_a_superuser(background_db, roles):
    vid = _vectorizer(background_db, "lifecycle")
    with psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True) as conn:
        assert conn.execute("SELECT ai.retry_failed(%s)", (vid,)).fetchone()[0] == 0
        conn.execute("SELECT ai.disable_vectorizer_schedule(%s)", (vid,))
        conn.execute("SELECT ai.enable_vectorizer_schedule(%s)", (vid,))
        conn.execute("CALL ai.execute_vectorizer(%s)", (vid,))
        conn.execute("SELECT ai.drop_vectorizer(%s, drop_all => true)", (vid,))
        assert conn.execute("SELECT to_regclass('app.lifecycle_embedding_store')").fetchone()[0] is None
        vid2 = conn.execute(f"""SELECT ai.create_vectorizer('app.lifecycle'::regclass,
                                loading => ai.loading_column('body'), {EMB})""").fetchone()[0]
        conn.execute("DROP TABLE app.lifecycle CASCADE")
        assert conn.execute("SELECT count(*) FROM ai.vectorizer WHERE id = %s", (vid2,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE %s",
                            (f"_vectorizer_%_{vid2}",)).fetchone()[0] == 0
    with psycopg.connect(role_dsn(background_db, "mallory"), autocommit=True) as conn:
        conn.execute("CREATE TABLE mal.mine (id int PRIMARY KEY)")
        conn.execute("DROP TABLE mal.mine")   # the drop event trigger needs no ai rights


def test_the_store_never_shows_text_its_reader_may_not_read_at_the_source(background_db, roles):
    _vectorizer(background_db, "guarded_text", "id int PRIMARY KEY, title text, body text")
    owner = psycopg.connect(role_dsn(background_db, APP_OWNER), autocommit=True)
    eve = psycopg.connect(role_dsn(background_db, "eve"), autocommit=True)
    with owner, eve:
        owner.execute("GRANT SELECT (id, title) ON app.guarded_text TO eve")   # not body, the embedded text
        owner.execute("GRANT SELECT ON app.guarded_text_embedding_store TO eve")
        assert eve.execute("SELECT chunk FROM app.guarded_text_embedding_store").fetchall() == []
        assert eve.execute("""SELECT stored_chunks FROM ai.vectorizer_status
                              WHERE name = 'guarded_text_embedding'""").fetchone()[0] == 0
        owner.execute("GRANT SELECT ON app.guarded_text TO eve")
        assert eve.execute("SELECT count(*) FROM app.guarded_text_embedding_store").fetchone()[0] == 1
        owner.execute("REVOKE SELECT ON app.guarded_text FROM eve")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            eve.execute("SELECT chunk FROM app.guarded_text_embedding_store").fetchall()


def _errors(dsn: str) -> list:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT name, message FROM ai.vectorizer_errors ORDER BY id DESC LIMIT 5").fetchall()
