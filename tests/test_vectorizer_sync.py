"""The sync guarantees: eventually exact, nothing lost, no wasted model calls, backfill."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from langchain_text_splitters import RecursiveCharacterTextSplitter

from pgweave_testing.helpers import execute_vectorizer, served_inputs

SPLITTER = RecursiveCharacterTextSplitter(chunk_size=100, chunk_overlap=0,
                                          separators=["\n\n", "\n", ".", "?", "!", " ", ""])
PARAGRAPHS = [
    "PostgreSQL stores rows in heap pages and finds them again through indexes of many kinds.",
    "Vector search compares embeddings by cosine distance to find passages with similar meaning.",
    "A trigger fires for each changed row and can queue the work that must follow the change.",
    "Background workers drain queues in batches and commit after each one to keep progress.",
    "Chunking splits long documents so that each piece fits the embedding model's window.",
]


def _create(dsn: str, **processing) -> None:
    proc = ", ".join(f"{k} => {v}" for k, v in processing.items())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text, views int DEFAULT 0)")
        conn.execute(f"""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
            chunking => ai.chunking_recursive_character_text_splitter(100, 0),
            processing => ai.processing_default({proc}))""")


def _stored(conn) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for key, chunk in conn.execute("SELECT id, chunk FROM docs_embedding_store ORDER BY id, chunk_seq"):
        out.setdefault(key, []).append(chunk)
    return out


def _expected(conn) -> dict[int, list[str]]:
    """What the store must hold: LangChain's chunks of every row's current body."""
    out = {}
    for key, body in conn.execute("SELECT id, body FROM docs ORDER BY id"):
        chunks = SPLITTER.split_text(body) if body and body.strip() else []
        if chunks:
            out[key] = chunks
    return out


def _assert_exact(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ai._vectorizer_q_1").fetchone()[0] == 0
        assert _stored(conn) == _expected(conn)
        # Every stored embedding is the embedding of its chunk, not of an older text.
        worst = conn.execute("""SELECT max(embedding <=> ai.ollama_embed('all-minilm', chunk))
                                FROM docs_embedding_store""").fetchone()[0]
        assert worst is None or worst < 1e-4


def test_inserts_updates_deletes_and_truncates_are_followed_exactly(db):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        for i in range(1, 11):
            conn.execute("INSERT INTO docs (id, title, body) VALUES (%s, %s, %s)",
                         (i, f"t{i}", "\n\n".join(PARAGRAPHS[: 1 + i % 5])))
    execute_vectorizer(db, "docs_embedding")
    _assert_exact(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET body = 'Completely new text about ' || title WHERE id <= 3")
        conn.execute("DELETE FROM docs WHERE id IN (4, 5)")
        conn.execute("UPDATE docs SET id = 100 WHERE id = 6")  # the key itself changes
        conn.execute("UPDATE docs SET body = NULL WHERE id = 7")
        conn.execute("UPDATE docs SET body = '' WHERE id = 8")
        conn.execute("INSERT INTO docs (id, title, body) VALUES (11, 'huge', %s)", ("word " * 1500,))
    execute_vectorizer(db, "docs_embedding")
    _assert_exact(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("TRUNCATE docs")
        assert conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0] == 0
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 'back', 'A row after the truncate.')")
    execute_vectorizer(db, "docs_embedding")
    _assert_exact(db)


def _run_blocked_batch(db: str, during) -> None:
    """Run a batch that has read, embedded and written, hold it before it commits, run ``during``."""
    holder = psycopg.connect(db)
    # The batch's last statement updates its progress row: holding that table stops the
    # batch after it read the source and wrote the store, before its commit.
    holder.execute("LOCK TABLE ai._vectorizer_progress IN EXCLUSIVE MODE")
    errors: list[BaseException] = []

    def worker():
        try:
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("CALL ai.execute_vectorizer('docs_embedding', max_batches => 1)")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    with psycopg.connect(db, autocommit=True) as watch:
        deadline = time.monotonic() + 60
        while not watch.execute("""SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                   WHERE query LIKE 'CALL ai.execute_vectorizer%%' AND wait_event_type = 'Lock')""").fetchone()[0]:
            assert time.monotonic() < deadline, "the batch never reached its commit"
            time.sleep(0.05)
    side = threading.Thread(target=during)
    side.start()
    time.sleep(0.3)
    holder.rollback()  # release: the batch writes what it read before `during`
    holder.close()
    thread.join(60)
    side.join(60)
    assert not errors, errors


def test_update_while_a_batch_embeds_the_old_version_ends_exact(db):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', 'The old version of the text.')")

    def update():
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE docs SET body = 'The new version of the text.' WHERE id = 1")

    _run_blocked_batch(db, update)
    with psycopg.connect(db) as conn:  # the batch stored the old text, the update is queued
        assert _stored(conn) == {1: ["The old version of the text."]}
        assert conn.execute("SELECT count(*) FROM ai._vectorizer_q_1").fetchone()[0] == 1
    execute_vectorizer(db, "docs_embedding")
    _assert_exact(db)


def test_delete_while_a_batch_embeds_ends_exact(db):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', 'Soon to be deleted.')")

    def delete():
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DELETE FROM docs WHERE id = 1")

    _run_blocked_batch(db, delete)
    execute_vectorizer(db, "docs_embedding")
    _assert_exact(db)
    with psycopg.connect(db) as conn:
        assert _stored(conn) == {}


def test_truncate_while_a_batch_embeds_ends_exact(db):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', 'Soon to be truncated.')")

    def truncate():
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("TRUNCATE docs")  # waits for the batch, then empties the store

    _run_blocked_batch(db, truncate)
    execute_vectorizer(db, "docs_embedding")
    _assert_exact(db)
    with psycopg.connect(db) as conn:
        assert _stored(conn) == {}


def test_model_server_outage_loses_nothing_and_retry_failed_brings_items_back(db):
    _create(db, max_attempts=2, retry_base_seconds=0)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', 'Embedded after the outage.')")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SET ai.ollama_host = 'http://127.0.0.1:9'")  # the server is down
        conn.execute("SET ai.http_retries = 0")
        conn.execute("CALL ai.execute_vectorizer('docs_embedding', max_batches => 1)")
        assert conn.execute("SELECT _attempts FROM ai._vectorizer_q_1").fetchone()[0] == 1
        conn.execute("CALL ai.execute_vectorizer('docs_embedding', max_batches => 1)")
        assert conn.execute("SELECT count(*) FROM ai._vectorizer_q_1").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ai._vectorizer_q_failed_1").fetchone()[0] == 1
        errors = conn.execute("SELECT name, message, details FROM ai.vectorizer_errors").fetchall()
        assert len(errors) == 2 and errors[0][0] == "docs_embedding"
        assert "cannot reach the model server at http://127.0.0.1:9" in errors[0][1]
        status = conn.execute("SELECT pending_items, failed_items, last_error FROM ai.vectorizer_status").fetchone()
        assert status[0] == 0 and status[1] == 1 and "cannot reach" in status[2]
        assert conn.execute("SELECT ai.retry_failed('docs_embedding')").fetchone()[0] == 1
    execute_vectorizer(db, "docs_embedding")  # the server is back (the database's setting)
    _assert_exact(db)


def test_update_that_changes_nothing_embedded_costs_no_model_call(db, model_server_url):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', %s)", ("\n\n".join(PARAGRAPHS),))
    execute_vectorizer(db, "docs_embedding")
    before = served_inputs(model_server_url)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET views = views + 1")          # not embedded: not even queued
        assert conn.execute("SELECT count(*) FROM ai._vectorizer_q_1").fetchone()[0] == 0
        conn.execute("UPDATE docs SET body = body")                # same text: not queued
        conn.execute("UPDATE docs SET body = body || ''")          # same text again
        assert conn.execute("SELECT count(*) FROM ai._vectorizer_q_1").fetchone()[0] == 0
        conn.execute("INSERT INTO ai._vectorizer_q_1 (id) VALUES (1)")  # forced re-check
    execute_vectorizer(db, "docs_embedding")
    assert served_inputs(model_server_url) == before
    _assert_exact(db)


def test_editing_one_paragraph_reembeds_only_that_chunk(db, model_server_url):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', %s)", ("\n\n".join(PARAGRAPHS),))
    execute_vectorizer(db, "docs_embedding")
    with psycopg.connect(db) as conn:
        assert len(_stored(conn)[1]) == len(PARAGRAPHS)
        calls_before = conn.execute("SELECT chunks_embedded FROM ai.vectorizer_status").fetchone()[0]
    before = served_inputs(model_server_url)
    edited = PARAGRAPHS.copy()
    edited[2] = "Triggers queue work for every changed row, and the queue is drained later."
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET body = %s WHERE id = 1", ("\n\n".join(edited),))
    execute_vectorizer(db, "docs_embedding")
    assert served_inputs(model_server_url) - before == 1
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT chunks_embedded FROM ai.vectorizer_status").fetchone()[0] == calls_before + 1
    _assert_exact(db)


def test_backfill_queues_existing_rows_and_shows_progress(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text, views int)")
        conn.execute("INSERT INTO docs SELECT i, 't', 'Existing row number ' || i FROM generate_series(1, 120) i")
        conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
            processing => ai.processing_default(batch_size => 50))""")
        assert conn.execute("SELECT ai.vectorizer_queue_pending('docs_embedding')").fetchone()[0] == 120
        conn.execute("CALL ai.execute_vectorizer('docs_embedding', max_batches => 1)")
        pending, stored = conn.execute("SELECT pending_items, stored_chunks FROM ai.vectorizer_status").fetchone()
        assert (pending, stored) == (70, 50)
    execute_vectorizer(db, "docs_embedding")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT pending_items, stored_chunks, items_processed FROM ai.vectorizer_status").fetchone() == (0, 120, 120)


def test_concurrent_workers_never_double_process_or_lose_items(db):
    _create(db, batch_size=5)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs SELECT i, 't', 'Row ' || i || ' of the concurrent test.' FROM generate_series(1, 60) i")
    threads = [threading.Thread(target=execute_vectorizer, args=(db, "docs_embedding")) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT items_processed, chunks_embedded FROM ai.vectorizer_status").fetchone() == (60, 60)
    _assert_exact(db)


def test_index_is_created_when_the_store_reaches_min_rows(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO docs SELECT i, 'Row ' || i FROM generate_series(1, 30) i")
        conn.execute("""SELECT ai.create_vectorizer('docs'::regclass, loading => ai.loading_column('body'),
            embedding => ai.embedding_ollama('all-minilm', 384), scheduling => ai.scheduling_none(),
            indexing => ai.indexing_hnsw(min_rows => 25, m => 8))""")
    execute_vectorizer(db, "docs_embedding")
    with psycopg.connect(db) as conn:
        indexdef = conn.execute("""SELECT indexdef FROM pg_indexes
                                   WHERE tablename = 'docs_embedding_store' AND indexdef LIKE '%%hnsw%%'""").fetchone()
    assert indexdef and "vector_cosine_ops" in indexdef[0] and "m='8'" in indexdef[0]


def test_call_inside_a_transaction_block_explains_itself(db):
    _create(db)
    with psycopg.connect(db) as conn:  # psycopg opens a transaction block
        with pytest.raises(psycopg.Error) as info:
            conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
    assert "transaction block" in str(info.value)
