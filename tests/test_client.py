"""The Python client: typed, thin (one SQL call per method), sync and async, errors users can catch."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

import pgweave
from pgweave_testing.helpers import declare_test_drainer, execute_vectorizer
from pgweave import AsyncClient, Client, ai
from pgweave.errors import (AlreadyExists, ConnectionFailed, InvalidArgument, ModelNotFound, NotFound,
                            NotInstalled, NotInSync, PgweaveError, VectorizerNotFound, from_psycopg)


def _notes(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, title text, body text)")
        conn.execute("INSERT INTO notes SELECT i, 'Note ' || i, 'Note number ' || i || ' is about databases.' "
                     "FROM generate_series(1, %s) i", (rows,))


def _create(client: Client, drained: bool = True, **overrides) -> int:
    """The notes vectorizer (scheduling none), drained by the test itself unless not drained."""
    if drained:
        client.connection.execute("SELECT ai._worker_heartbeat('pytest-drainer', NULL)")
    args = dict(name="notes_embedding", loading=ai.loading_column("body"),
                embedding=ai.embedding_ollama("all-minilm", 384),
                chunking=ai.chunking_none(), scheduling=ai.scheduling_none(),
                processing=ai.processing_default(batch_size=5))
    return client.create_vectorizer("notes", **{**args, **overrides})


def test_the_ai_namespace_renders_the_sql_a_user_would_write():
    call = ai.embedding_ollama("all-minilm", 384, base_url="http://h:11434")
    assert repr(call) == "ai.embedding_ollama('all-minilm', 384, base_url='http://h:11434')"
    assert call.as_sql().as_string(None) == \
        """"ai"."embedding_ollama"('all-minilm', 384, "base_url" => 'http://h:11434')"""
    nested = ai.destination_table(target_table="it's")
    assert nested.as_sql().as_string(None) == """"ai"."destination_table"("target_table" => 'it''s')"""
    with pytest.raises(AttributeError):
        ai._vectorizer_id  # internals are not part of the namespace


def test_a_vectorizer_created_from_python_is_listed_processed_and_in_sync(db):
    _notes(db, 12)
    with Client.connect(db) as client:
        vid = _create(client, formatting=ai.formatting_python_template("$title: $chunk"))
        [listed] = client.vectorizers()
        assert (listed.id, listed.name, listed.source_table, listed.view_name) == \
            (vid, "notes_embedding", "notes", "notes_embedding")
        assert listed.config["formatting"]["template"] == "$title: $chunk"
        status = client.status("notes_embedding")
        assert (status.pending_items, status.stored_chunks, status.schedule) == (12, 0, "manual")
        assert not status.in_sync and status.embedding_model == "ollama:all-minilm"
        assert client.queue_pending("notes_embedding", exact=True) == 12
        client.execute_vectorizer("notes_embedding")
        [status] = client.status()
        assert status.in_sync and status.stored_chunks == 12 and status.items_processed == 12
        assert client.version() == pgweave.__version__


def test_the_callers_own_connection_and_transaction_are_used(db):
    _notes(db, 2)
    with psycopg.connect(db) as conn:  # not autocommit: the client runs inside its transaction
        client = Client(conn)
        _create(client)
        conn.rollback()
        assert client.vectorizers() == []


def test_unknown_names_raise_vectorizer_not_found_with_the_database_hint(db):
    _notes(db, 1)
    with Client.connect(db) as client:
        with pytest.raises(VectorizerNotFound) as none_yet:  # also when no vectorizer exists
            client.status("nope")
        assert none_yet.value.hint == "create one with ai.create_vectorizer(...)"
        _create(client)
        for call in (lambda: client.status("nope"), lambda: client.errors("nope"),
                     lambda: client.retry_failed("nope"), lambda: client.vectorizer("nope"),
                     lambda: client.drop_vectorizer("nope"), lambda: client.wait("nope", timeout=1)):
            with pytest.raises(VectorizerNotFound) as exc:
                call()
            assert exc.value.message == 'vectorizer "nope" does not exist'
            assert exc.value.hint == "existing vectorizers: notes_embedding"
            assert exc.value.sqlstate == "42704"
            assert isinstance(exc.value.__cause__, psycopg.errors.UndefinedObject)


def test_bad_declarations_raise_typed_errors_that_keep_message_and_hint(db):
    _notes(db, 1)
    with Client.connect(db) as client:
        _create(client)
        with pytest.raises(AlreadyExists) as exc:
            _create(client)
        assert "if_not_exists => true" in exc.value.hint
        assert _create(client, if_not_exists=True) == client.vectorizer("notes_embedding").id
        with pytest.raises(InvalidArgument) as exc:
            _create(client, name="other", loading=ai.loading_column("no_such_column"))
        assert exc.value.message == 'column "no_such_column" does not exist in public.notes'
        assert "ai.loading_column" in str(exc.value)   # str() carries the hint
        with pytest.raises(NotFound) as exc:
            client.create_vectorizer("no_such_table", embedding=ai.embedding_ollama("all-minilm", 384))
        assert isinstance(exc.value, PgweaveError) and "no_such_table" in exc.value.message


def test_wait_reports_progress_until_a_backfill_is_in_sync(db):
    _notes(db, 40)
    seen = []
    drainer = threading.Thread(target=execute_vectorizer, args=(db, "notes_embedding"))

    def on_progress(progress):
        seen.append(progress)
        if not drainer.is_alive() and len(seen) == 1:
            drainer.start()   # after the first look, so that it sees the whole backfill

    with Client.connect(db) as client:
        _create(client)
        try:
            final = client.wait("notes_embedding", timeout=120, poll_interval=0.05,
                                on_progress=on_progress)
        finally:
            drainer.join()
    assert final.in_sync and final.stored_chunks == 40
    assert (seen[0].done, seen[0].total) == (0, 40)
    assert seen[-1].done == seen[-1].total == 40 and seen[-1].in_sync
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert all(p.total == 40 for p in seen)   # no writes meanwhile: the total holds


def test_wait_times_out_with_not_in_sync_and_the_last_status(db):
    _notes(db, 3)
    with Client.connect(db) as client:
        _create(client)   # a drainer is declared, but nothing drains the queue
        with pytest.raises(NotInSync) as exc:
            client.wait("notes_embedding", timeout=0.3, poll_interval=0.1)
    assert isinstance(exc.value, TimeoutError)
    assert exc.value.status.pending_items == 3
    assert "3 pending item(s)" in exc.value.message


def test_errors_and_retry_of_parked_items(db):
    _notes(db, 3)
    with Client.connect(db) as client:
        _create(client, embedding=ai.embedding_ollama("no-such-model", 384),
                processing=ai.processing_default(batch_size=5, max_attempts=1))
        client.execute_vectorizer("notes_embedding")
        status = client.status("notes_embedding")
        assert (status.pending_items, status.failed_items) == (0, 3)
        [error] = client.errors("notes_embedding")
        assert error.name == "notes_embedding" and "no-such-model" in error.message
        assert error.details["sqlstate"] == "42704"
        assert client.errors() == [error] and client.errors(limit=1) == [error]
        assert client.retry_failed("notes_embedding") == 3
        assert client.status("notes_embedding").pending_items == 3


def test_drop_keeps_the_data_by_default_and_the_definition_recreates_it(db):
    _notes(db, 2)
    with Client.connect(db) as client:
        _create(client, formatting=ai.formatting_python_template("$title: $chunk"))
        before = client.vectorizer("notes_embedding")
        client.drop_vectorizer("notes_embedding")
        assert client.vectorizers() == []
        assert client.connection.execute("SELECT to_regclass('notes_embedding_store') IS NOT NULL").fetchone()[0]
        client.connection.execute("DROP VIEW notes_embedding; DROP TABLE notes_embedding_store")
        client.create_vectorizer(**before.definition())
        after = client.vectorizer("notes_embedding")
        assert {k: v for k, v in after.config.items() if k != "version"} == \
            {k: v for k, v in before.config.items() if k != "version"}
        client.drop_vectorizer("notes_embedding", drop_all=True)
        assert client.connection.execute("SELECT to_regclass('notes_embedding_store')").fetchone()[0] is None


def test_schedule_can_be_disabled_and_enabled(db):
    _notes(db, 1)
    with Client.connect(db) as client:
        _create(client)
        client.disable_schedule("notes_embedding")
        assert client.vectorizer("notes_embedding").config["scheduling"]["disabled"] is True
        client.enable_schedule("notes_embedding")
        assert "disabled" not in client.vectorizer("notes_embedding").config["scheduling"]


def test_connect_takes_the_dsn_from_the_environment(db, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PGWEAVE_DSN", db)
    with Client.connect() as client:
        assert client.status() == []


def test_an_unreachable_database_raises_connection_failed_naming_the_cause():
    with pytest.raises(ConnectionFailed) as exc:
        Client.connect("postgresql://nobody@127.0.0.1:9/nowhere", connect_timeout=3)
    assert exc.value.cause == "server-down" and "start the server" in exc.value.hint


def test_sync_and_async_clients_have_the_same_methods_and_signatures():
    import inspect

    def public(cls):
        return {name: inspect.signature(getattr(cls, name)) for name in vars(cls)
                if not name.startswith("_") and callable(getattr(cls, name))}

    sync, asynchronous = public(Client), public(AsyncClient)
    assert sorted(sync) == sorted(asynchronous)
    for name, signature in sync.items():
        other = asynchronous[name]
        assert list(signature.parameters.values()) == list(other.parameters.values()), name
        assert signature.return_annotation == other.return_annotation.replace("AsyncClient", "Client"), name
    assert all(inspect.iscoroutinefunction(getattr(AsyncClient, n)) for n in asynchronous)


def test_a_statement_timeout_stays_a_database_error_not_a_model_server_error(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 50")
        with pytest.raises(psycopg.Error) as raw:
            conn.execute("SELECT pg_sleep(1)")
    error = from_psycopg(raw.value)
    assert error.sqlstate == "57014" and type(error).__name__ == "DatabaseError"


def test_a_database_without_pgweave_raises_not_installed_until_installed(empty_db):
    with Client.connect(empty_db) as client:
        with pytest.raises(NotInstalled) as exc:
            client.status()
        assert "pgweave install" in exc.value.hint
        assert client.install() == pgweave.__version__
        assert client.status() == []


def test_the_async_client_mirrors_the_sync_one(db):
    _notes(db, 15)
    declare_test_drainer(db)

    async def story():
        progress = []

        async def record(p):
            progress.append(p)

        async with await AsyncClient.connect(db) as client:
            vid = await client.create_vectorizer(
                "notes", loading=ai.loading_column("body"), embedding=ai.embedding_ollama("all-minilm", 384),
                scheduling=ai.scheduling_none(), processing=ai.processing_default(batch_size=5))
            assert [v.id for v in await client.vectorizers()] == [vid]
            with pytest.raises(VectorizerNotFound):
                await client.status("nope")
            with pytest.raises(NotInSync):
                await client.wait("notes_embedding", timeout=0.2, poll_interval=0.05)
            other = await psycopg.AsyncConnection.connect(db, autocommit=True)
            async with other:
                drainer = asyncio.create_task(other.execute("CALL ai.execute_vectorizer('notes_embedding')"))
                final = await client.wait("notes_embedding", timeout=120, poll_interval=0.05,
                                          on_progress=record)
                await drainer
            assert final.in_sync and final.stored_chunks == 15
            assert progress[-1].done == 15
            assert await client.errors() == []
            assert await client.retry_failed("notes_embedding") == 0
            await client.drop_vectorizer("notes_embedding", drop_all=True)
            assert await client.status() == []

    asyncio.run(story())


BLOG = """
CREATE TABLE blog (id int PRIMARY KEY, title text, rank int, lang text, contents text);
INSERT INTO blog VALUES
 (1, 'Cats', 30, 'en', 'Cats are small domesticated carnivores. They purr when content and sleep most of the day.'),
 (2, 'Rust', 20, 'en', 'Rust is a systems programming language focused on memory safety without garbage collection.'),
 (3, 'Tax', 10, 'de', 'Quarterly estimated tax payments are due in April, June, September and January.');
"""


def _blog(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(BLOG)
    with Client.connect(db) as client:
        client.create_vectorizer("blog", name="posts", destination="blog_chunks",
                                 loading=ai.loading_column("contents"),
                                 embedding=ai.embedding_ollama("all-minilm", 384),
                                 scheduling=ai.scheduling_none())
        client.execute_vectorizer("posts")


def test_semantic_search_returns_typed_hits_best_first(db):
    _blog(db)
    with Client.connect(db) as client:
        hits = client.semantic_search("posts", "pets that purr", k=2)
        assert [h.rank for h in hits] == [1, 2]
        assert hits[0].key == {"id": 1} and hits[0].row["title"] == "Cats"
        assert hits[0].chunk.startswith("Cats are")
        assert hits[0].row["rank"] == 30   # a source column named rank does not shadow the search's
        assert hits[0].distance < hits[1].distance
        assert len(hits[0].row["embedding"].to_list()) == 384   # pgvector.Vector
        assert [h.key for h in client.semantic_search("posts", "pets", filter={"lang": "de"})] == [{"id": 3}]
        assert [h.key for h in client.semantic_search("posts", "pets", where_clause="rank < 25")] == \
            [{"id": 2}, {"id": 3}]
        with pytest.raises(InvalidArgument) as exc:
            client.semantic_search("posts", "pets", filter={"colour": "red"})
        assert "colour" in exc.value.message and "columns:" in exc.value.hint
        with pytest.raises(VectorizerNotFound):
            client.semantic_search("nope", "pets")


def test_hybrid_search_fuses_text_and_vector_ranks(db):
    _blog(db)
    with Client.connect(db) as client:
        hits = client.hybrid_search("posts", "memory safety", k=3)
    assert hits[0].key == {"id": 2} and hits[0].vector_rank == 1 and hits[0].text_rank == 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.text_rank is None for h in hits[1:])


def test_rag_answers_with_its_sources_and_prompt(db):
    from pgweave_testing.helpers import TINY_LM

    _blog(db)
    with Client.connect(db) as client:
        answer = client.rag("posts", "When are taxes due?", TINY_LM, k=2, options={"num_predict": 4})
    assert isinstance(answer.answer, str)
    assert [s["key"] for s in answer.sources][0] == {"id": 3}
    assert "When are taxes due?" in answer.prompt and "[1]" in answer.prompt


def test_async_search(db):
    _blog(db)

    async def story():
        async with await AsyncClient.connect(db) as client:
            semantic = await client.semantic_search("posts", "pets that purr", k=1)
            hybrid = await client.hybrid_search("posts", "memory safety", k=1)
            return semantic, hybrid

    semantic, hybrid = asyncio.run(story())
    assert semantic[0].key == {"id": 1} and hybrid[0].key == {"id": 2}


def test_errors_of_in_database_python_come_without_plpythons_type_prefix(db):
    _notes(db, 1)
    with psycopg.connect(db) as conn:
        with pytest.raises(psycopg.Error) as raw:  # a function users call: its entry point cleans it
            conn.execute("SELECT ai.ollama_embed('no-such-model', 'x')")
    assert raw.value.diag.message_primary.startswith("model 'no-such-model' is not available")
    error = from_psycopg(raw.value)
    assert isinstance(error, ModelNotFound) and "all-minilm" in error.hint
    with psycopg.connect(db) as conn:  # a procedure cannot have an entry point (it commits)
        with Client(conn) as client:
            _create(client)
            with pytest.raises(PgweaveError) as info:
                client.execute_vectorizer("notes_embedding")  # inside the connection's transaction
    assert info.value.__cause__.sqlstate == "2D000"  # PostgreSQL's own "invalid transaction termination"
    assert info.value.message.startswith("ai.execute_vectorizer commits after every batch")
    assert "autocommit" in info.value.hint
