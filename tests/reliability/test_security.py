"""Security of every entry point: grants, definer functions, caller's rights, secrets."""

from __future__ import annotations

import psycopg
import pytest

from pgweave_testing.database import SERVER_LOG
from pgweave_testing.helpers import role_dsn

from pgweave_testing.fault_proxy import FaultProxy

KEY = "sk-pgweave-test-SECRET-0123456789abcdef"


@pytest.fixture
def roles(db):
    with psycopg.connect(db, autocommit=True) as conn:
        for role in ("granted", "stranger"):
            conn.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN")
        conn.execute("SELECT ai.grant_ai_usage('granted')")
    yield
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP OWNED BY granted, stranger; DROP ROLE granted; DROP ROLE stranger")


def _vectorizer(conn, **extra) -> None:
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, owner_name text, body text)")
    conn.execute("INSERT INTO docs VALUES (1, 'granted', 'visible to granted'), (2, 'other', 'hidden row text')")
    conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
        embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
        grant_to => ARRAY['granted'])""")


def test_security_definer_functions_pin_their_search_path(db, roles):
    with psycopg.connect(db, autocommit=True) as conn:
        _vectorizer(conn)
        unpinned = conn.execute("""
            SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'ai'::regnamespace AND p.prosecdef
              AND NOT coalesce(array_to_string(p.proconfig, ',') LIKE '%search_path=%', false)""").fetchall()
        definers = conn.execute("""SELECT count(*) FROM pg_proc
                                   WHERE pronamespace = 'ai'::regnamespace AND prosecdef""").fetchone()[0]
    assert definers >= 1 and unpinned == []


def test_untrusted_code_runs_only_for_granted_roles(db, roles):
    with psycopg.connect(db) as conn:
        rows = conn.execute("""
            SELECT p.oid::regprocedure::text, has_function_privilege('stranger', p.oid, 'EXECUTE'),
                   has_function_privilege('granted', p.oid, 'EXECUTE')
            FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'ai'::regnamespace AND l.lanname = 'plpython3u'""").fetchall()
    assert len(rows) >= 10
    assert [r[0] for r in rows if r[1]] == []          # no plpython3u entry point for a stranger
    assert [r[0] for r in rows if not r[2]] == []      # every one for a granted role
    with psycopg.connect(role_dsn(db, "stranger")) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ai._load_python()")


def test_reading_through_a_vectorizer_needs_rights_on_the_source_and_obeys_rls(db, roles):
    with psycopg.connect(db, autocommit=True) as conn:
        _vectorizer(conn)
        conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
    with psycopg.connect(role_dsn(db, "granted")) as conn:  # may read the view, not the source
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="docs"):
            conn.execute("SELECT chunk FROM docs_embedding")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("GRANT SELECT ON docs TO granted")
        conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY own_rows ON docs FOR SELECT USING (owner_name = current_user)")
    with psycopg.connect(role_dsn(db, "granted")) as conn:
        chunks = [r[0] for r in conn.execute("SELECT chunk FROM docs_embedding")]
        # grant_to gave SELECT on the store too (the view reads it with the caller's rights):
        # the store holds the hidden row's text, and shows it no more than the source does.
        stored = [r[0] for r in conn.execute("SELECT chunk FROM docs_embedding_store")]
    assert chunks == ["visible to granted"] and stored == ["visible to granted"]
    with psycopg.connect(role_dsn(db, "stranger")) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM docs_embedding")


def test_a_store_made_on_a_table_with_row_level_security_has_it_from_the_start(db, roles):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, owner_name text, body text)")
        conn.execute("ALTER TABLE docs ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY own_rows ON docs FOR SELECT USING (owner_name = current_user)")
        conn.execute("GRANT SELECT ON docs TO granted")
        conn.execute("INSERT INTO docs VALUES (1, 'granted', 'visible to granted'), (2, 'other', 'hidden row text')")
        conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
            grant_to => ARRAY['granted'])""")
        conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
        assert conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'docs_embedding_store'::regclass"
                            ).fetchone()[0] is True
        assert conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0] == 2
    with psycopg.connect(role_dsn(db, "granted")) as conn:
        assert [r[0] for r in conn.execute("SELECT chunk FROM docs_embedding_store")] == ["visible to granted"]
        hits = conn.execute("SELECT (hit).chunk FROM ai.semantic_search(NULL::docs_embedding, 'hidden row')").fetchall()
        assert hits == [("visible to granted",)]
    with psycopg.connect(db, autocommit=True) as conn:  # without rights on the source, no chunk at all
        conn.execute("REVOKE SELECT ON docs FROM granted")
    with psycopg.connect(role_dsn(db, "granted")) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="docs"):
            conn.execute("SELECT chunk FROM docs_embedding_store")


def test_a_refused_key_never_appears_anywhere(db, roles, model_server_url, model_server_log):
    proxy = FaultProxy(model_server_url)
    proxy.mode = "reject_key"
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("SELECT ai.store_secret('MY_PROVIDER_KEY', %s)", (KEY,))
            conn.execute("SELECT ai.grant_secret('MY_PROVIDER_KEY', 'granted')")
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
            conn.execute("INSERT INTO docs VALUES (1, 'text to embed')")
            conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
                embedding => ai.embedding_openai('all-minilm', 384, api_key_name => 'MY_PROVIDER_KEY',
                                                 base_url => %s),
                scheduling => ai.scheduling_none())""", (proxy.url + "/v1",))
            conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
            with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification) as info:
                conn.execute("SELECT ai.openai_embed('all-minilm', 'x', api_key => %s, base_url => %s)",
                             (KEY, proxy.url + "/v1"))
        raised = " ".join(str(x) for x in (info.value, info.value.diag.message_hint,
                                            info.value.diag.message_detail, info.value.diag.context))
        assert "refused the request" in raised and KEY not in raised and KEY[:12] not in raised
        with psycopg.connect(db) as conn:
            errors = conn.execute("SELECT message || details::text FROM ai.vectorizer_errors").fetchall()
            assert errors and "refused the request" in errors[0][0]
            # Every table and view of schema ai, read by a granted (non-superuser) role.
            relations = [r[0] for r in conn.execute("""SELECT format('%I.%I', schemaname, relname)
                FROM pg_stat_user_tables WHERE schemaname = 'ai'
                UNION SELECT format('ai.%I', viewname) FROM pg_views WHERE schemaname = 'ai'""")]
        with psycopg.connect(role_dsn(db, "stranger")) as conn:
            assert conn.execute("SELECT count(*) FROM ai._secret").fetchone()[0] == 0
        # Every relation but the secret store itself: as the superuser (everything) and as a
        # granted role (what it can read).
        for dsn in (db, role_dsn(db, "granted")):
            with psycopg.connect(dsn) as conn:
                for rel in relations:
                    if rel == "ai._secret" or not conn.execute(
                            "SELECT has_table_privilege(%s, 'SELECT')", (rel,)).fetchone()[0]:
                        continue
                    dump = conn.execute(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {rel} t").fetchone()[0]
                    assert KEY not in dump and KEY[:12] not in dump, f"{rel} shows the key"
        # The logs that exist: the model server's always, the cluster's when this session runs it.
        logs = [model_server_log, *SERVER_LOG]
        for log in logs:
            text = log.read_text(errors="replace")
            assert text.strip(), f"{log} is empty: nothing was checked"
            assert KEY not in text and KEY[:12] not in text, f"{log} shows the key"
        print(f"\n[key] checked {len(relations)} relations and logs {[str(p) for p in logs]}")
    finally:
        proxy.close()
