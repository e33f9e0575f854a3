"""The client's error classes, each raised by the real failure it names, for a non-superuser:
PermissionDenied (a role without rights), ModelServerError (the model server is down),
DatabaseError (anything else the database raises, e.g. a statement timeout)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

import pgweave
from pgweave import AsyncClient, Client
from pgweave_testing.fault_proxy import FaultProxy
from pgweave_testing.helpers import execute_vectorizer, role_dsn

ROWS = {1: "Cats purr when they are content.", 2: "VACUUM reclaims the space of dead tuples."}


@pytest.fixture
def readable(db, app_role, make_vectorizer):
    """docs with a vectorizer app_user may search (drained), and app_user's DSN."""
    v = make_vectorizer(db, rows=ROWS, reader="app_user")
    execute_vectorizer(db, v.name)
    return app_role


def test_a_role_without_rights_gets_permission_denied(db, readable):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON docs FROM app_user")
    with Client.connect(readable) as client:
        with pytest.raises(pgweave.PermissionDenied) as info:
            client.semantic_search("docs_embedding", "purring", k=1)
    assert info.value.sqlstate == "42501" and "docs" in info.value.message
    assert isinstance(info.value, pgweave.PgweaveError)


def test_a_role_never_granted_ai_usage_gets_permission_denied(db, readable):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS outsider; CREATE ROLE outsider LOGIN")
    try:
        with Client.connect(role_dsn(db, "outsider")) as client:
            with pytest.raises(pgweave.PermissionDenied) as info:
                client.semantic_search("docs_embedding", "purring", k=1)
        assert info.value.sqlstate == "42501"
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY outsider; DROP ROLE outsider")


def test_search_with_the_model_server_down_raises_model_server_error(db, app_role, make_vectorizer,
                                                                     model_server_url):
    server = FaultProxy(model_server_url)
    v = make_vectorizer(db, rows=ROWS, reader="app_user",
                        model=f"ai.embedding_ollama('all-minilm', 384, base_url => '{server.url}')")
    execute_vectorizer(db, v.name)
    server.close()
    with Client.connect(app_role) as client:
        client.connection.execute("SET ai.http_retries = 0")
        with pytest.raises(pgweave.ModelServerError) as info:
            client.semantic_search(v.name, "a question never asked", k=1)
    assert info.value.sqlstate.startswith("08") and "cannot reach the model server" in info.value.message
    assert info.value.hint and not info.value.message.startswith("plpy")


def test_a_statement_timeout_stays_a_database_error(readable):
    with Client.connect(readable) as client:
        client.connection.execute("SET statement_timeout = '300ms'")
        with pytest.raises(pgweave.DatabaseError) as info:
            client.semantic_search("docs_embedding", "purring", k=1, where_clause="pg_sleep(5) IS NOT NULL")
    assert info.value.sqlstate == "57014"
    assert not isinstance(info.value, pgweave.ModelServerError)


def test_the_async_client_raises_the_same_classes(db, readable):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON docs FROM app_user")

    async def search() -> None:
        client = await AsyncClient.connect(readable)
        try:
            await client.semantic_search("docs_embedding", "purring", k=1)
        finally:
            await client.close()

    with pytest.raises(pgweave.PermissionDenied):
        asyncio.run(search())
