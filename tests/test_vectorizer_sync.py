"""The sync guarantees: eventually exact, nothing lost, no wasted model calls, backfill.

Races are forced, never left to timing: a batch is held before its commit by a lock on the
table its last statement writes, a key is held by the engine's own advisory lock, and the
model server is paused (a gating proxy) so drainers are provably mid-batch at once.
"""

from __future__ import annotations

import contextlib

import psycopg
import pytest

from pgweave_testing.checker import check_exact, stored_chunks
from pgweave_testing.claims import read_claims, record_claims
from pgweave_testing.fault_proxy import FaultProxy
from pgweave_testing.helpers import APP_OWNER, execute_vectorizer, role_dsn, served_inputs, started, wait_until
from pgweave_testing.vectorizers import create_vectorizer

PARAGRAPHS = [
    "PostgreSQL stores rows in heap pages and finds them again through indexes of many kinds.",
    "Vector search compares embeddings by cosine distance to find passages with similar meaning.",
    "A trigger fires for each changed row and can queue the work that must follow the change.",
    "Background workers drain queues in batches and commit after each one to keep progress.",
    "Chunking splits long documents so that each piece fits the embedding model's window.",
]
COLUMNS = "id int PRIMARY KEY, title text, body text, views int DEFAULT 0"


def _create(dsn: str, processing: str = "", **kwargs):
    """The docs table (id, title, body, views) with its vectorizer."""
    return create_vectorizer(dsn, columns=COLUMNS, processing=processing, **kwargs)


def _stored(conn) -> dict[int, list[str]]:
    return stored_chunks(conn)


def _queued(conn) -> int:
    return conn.execute("SELECT count(*) FROM ai._vectorizer_q_1").fetchone()[0]


def test_inserts_updates_deletes_and_truncates_are_followed_exactly(db, st_model):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        for i in range(1, 11):
            conn.execute("INSERT INTO docs (id, title, body) VALUES (%s, %s, %s)",
                         (i, f"t{i}", "\n\n".join(PARAGRAPHS[: 1 + i % 5])))
    execute_vectorizer(db, "docs_embedding")
    check_exact(db, st_model)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE docs SET body = 'Completely new text about ' || title WHERE id <= 3")
        conn.execute("DELETE FROM docs WHERE id IN (4, 5)")
        conn.execute("UPDATE docs SET id = 100 WHERE id = 6")  # the key itself changes
        conn.execute("UPDATE docs SET body = NULL WHERE id = 7")
        conn.execute("UPDATE docs SET body = '' WHERE id = 8")
        conn.execute("INSERT INTO docs (id, title, body) VALUES (11, 'huge', %s)", ("word " * 1500,))
    execute_vectorizer(db, "docs_embedding")
    check_exact(db, st_model)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("TRUNCATE docs")
        assert conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0] == 0
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 'back', 'A row after the truncate.')")
    execute_vectorizer(db, "docs_embedding")
    check_exact(db, st_model)


def _blockers(conn, pid: int) -> list[int]:
    """The backends ``pid`` waits for (pg_blocking_pids)."""
    return conn.execute("SELECT pg_blocking_pids(%s)", (pid,)).fetchone()[0]


@contextlib.contextmanager
def _held_batch(db: str):
    """A batch that has claimed, read the source and written the store, held before its commit.

    The batch's last statement updates its progress row: a transaction holding that table
    stops it there. Yields (watch connection, the batch's backend pid); on leaving, the batch
    is released, and its outcome is checked (an error in it fails the test).
    """
    holder = psycopg.connect(db)
    holder.execute("LOCK TABLE ai._vectorizer_progress IN EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid
    batch_conn = psycopg.connect(db, autocommit=True)
    batch_pid = batch_conn.info.backend_pid
    batch = started(batch_conn.execute, "CALL ai.execute_vectorizer('docs_embedding', max_batches => 1)",
                    name="held batch")
    try:
        with psycopg.connect(db, autocommit=True) as watch:
            wait_until(lambda: holder_pid in _blockers(watch, batch_pid), "the batch reached its commit")
            yield watch, batch_pid
            assert batch.is_alive() and holder_pid in _blockers(watch, batch_pid), "the batch was not held"
    finally:
        holder.rollback()  # release: the batch commits what it read before the change
        holder.close()
    batch.result(120)
    batch_conn.close()


def test_update_while_a_batch_embeds_the_old_version_ends_exact(db, st_model):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', 'The old version of the text.')")
    with _held_batch(db) as (watch, _):
        watch.execute("UPDATE docs SET body = 'The new version of the text.' WHERE id = 1")  # commits now
    with psycopg.connect(db) as conn:  # the batch stored the old text, the update is queued
        assert _stored(conn) == {1: ["The old version of the text."]}
        assert _queued(conn) == 1
    execute_vectorizer(db, "docs_embedding")
    check_exact(db, st_model)
    with psycopg.connect(db) as conn:
        assert _stored(conn) == {1: ["The new version of the text."]}


def test_delete_while_a_batch_embeds_ends_exact(db, st_model):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', 'Soon to be deleted.')")
    with _held_batch(db) as (watch, _):
        watch.execute("DELETE FROM docs WHERE id = 1")  # commits while the batch holds the row's text
    with psycopg.connect(db) as conn:  # the batch stored what it read; the delete is queued
        assert _stored(conn) == {1: ["Soon to be deleted."]}
        assert _queued(conn) == 1
    execute_vectorizer(db, "docs_embedding")
    check_exact(db, st_model)
    with psycopg.connect(db) as conn:
        assert _stored(conn) == {}


def test_truncate_while_a_batch_embeds_waits_for_it_then_empties_the_store(db, st_model):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, title, body) VALUES (1, 't', 'Soon to be truncated.')")
    truncating = psycopg.connect(db, autocommit=True)
    with _held_batch(db) as (watch, batch_pid):
        truncate = started(truncating.execute, "TRUNCATE docs", name="truncate")
        # The truncate waits for the batch (it read the source), not the other way round.
        wait_until(lambda: batch_pid in _blockers(watch, truncating.info.backend_pid),
                   "the truncate waits for the held batch")
    truncate.result(60)
    truncating.close()
    with psycopg.connect(db) as conn:  # the batch committed first, then the truncate emptied its rows
        assert _stored(conn) == {}
    execute_vectorizer(db, "docs_embedding")
    check_exact(db, st_model)
    with psycopg.connect(db) as conn:
        assert _stored(conn) == {}


def test_model_server_outage_loses_nothing_and_retry_failed_brings_items_back(db, st_model):
    _create(db, "max_attempts => 2, retry_base_seconds => 0")
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
    check_exact(db, st_model)


def test_update_that_changes_nothing_embedded_costs_no_model_call(db, st_model, model_server_url):
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
    check_exact(db, st_model)


def test_editing_one_paragraph_reembeds_only_that_chunk(db, st_model, model_server_url):
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
    check_exact(db, st_model)


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


def test_concurrent_drainers_split_the_queue_without_double_processing_or_loss(db, st_model):
    """Four drainers, provably mid-batch at the same time (the model server holds all four
    requests at once); every item processed by exactly one of them, none left, and both items
    of a key by the same one."""
    proxy = FaultProxy(_model_url(db))
    try:
        v = create_vectorizer(db, processing="batch_size => 5",
                              model=f"ai.embedding_ollama('all-minilm', 384, base_url => '{proxy.url}')")
        record_claims(db, v.queue)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("INSERT INTO docs (id, body) SELECT i, 'Row ' || i || ' of the concurrent test.' FROM generate_series(1, 60) i")
            conn.execute("UPDATE docs SET body = body || ' Edited.'")  # a second queued item for every key
        with psycopg.connect(db) as conn:
            assert _queued(conn) == 120
        proxy.mode = "gate"

        def drain(name: str) -> None:
            with psycopg.connect(db, autocommit=True, application_name=name) as conn:
                conn.execute("CALL ai.execute_vectorizer('docs_embedding')")

        drainers = [started(drain, f"drainer{i}", name=f"drainer{i}") for i in range(4)]
        proxy.wait_held(4, threads=drainers)  # four batches claimed and in flight at once
        proxy.mode = "pass"
        proxy.release(4)
        for d in drainers:
            d.result(180)
    finally:
        proxy.close()
    claims = read_claims(db)
    claims.assert_split_exactly({f"drainer{i}" for i in range(4)})
    keys = list(claims.keys.values())  # both items of a key went to one drainer
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == 60
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT items_processed, chunks_embedded FROM ai.vectorizer_status").fetchone() == (120, 60)
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0] == 0
    check_exact(db, st_model)


@pytest.mark.parametrize("plan", ["index scan", "sort"])
def test_a_claim_locks_only_the_keys_it_claims_whatever_its_plan(background_db, plan):
    """A second backend finds work while the first holds a batch, even when the first's claim
    is planned as a sort of the whole queue (a sequential scan, or a generic plan): before,
    such a claim took every queued key's advisory lock until its commit, and the other
    scheduler backends and workers found nothing to claim and slept. As a table owner who is
    not a superuser, in a database that is not pg_cron's."""
    table = "claims_" + plan.replace(" ", "_")
    owner = role_dsn(background_db, APP_OWNER)
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE app.{table} (id int PRIMARY KEY, body text)")
        vid = conn.execute(f"""SELECT ai.create_vectorizer('app.{table}'::regclass,
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            processing => ai.processing_default(batch_size => 3),
            scheduling => ai.scheduling_none())""").fetchone()[0]
        conn.execute(f"INSERT INTO app.{table} SELECT i, 'row ' || i FROM generate_series(1, 12) i")
    claim = f"SELECT ai._engine_op({vid}, 'claim')::jsonb"
    with psycopg.connect(owner) as first, psycopg.connect(owner) as second:
        if plan == "sort":  # the claim's statement is prepared in this session, with these settings
            first.execute("SET enable_indexscan = off")
            first.execute("SET enable_bitmapscan = off")
        held = first.execute(claim).fetchone()[0]  # its transaction stays open: a batch in progress
        assert len(held["ids"]) == 3
        advisory = first.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                 "AND pid = pg_backend_pid()").fetchone()[0]
        assert advisory == 3  # one per claimed key, not one per queued row
        other = second.execute(claim).fetchone()[0]
        assert len(other["ids"]) == 3 and not set(other["ids"]) & set(held["ids"])
        first.rollback()
        second.rollback()
    # A role with ai usage that does not own the table may not claim (and so hold) its items.
    outsider = "claims_outsider"
    with psycopg.connect(background_db, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {outsider}; CREATE ROLE {outsider} LOGIN")
        conn.execute("SELECT ai.grant_ai_usage(%s)", (outsider,))
    try:
        with psycopg.connect(role_dsn(background_db, outsider)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(claim)
    finally:
        with psycopg.connect(background_db, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {outsider}; DROP ROLE {outsider}")
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(f"CALL ai.execute_vectorizer({vid})")
        assert conn.execute(f"SELECT count(*) FROM app.{table}_embedding_store").fetchone()[0] == 12


def _one_batch(dsn: str, name: str) -> None:
    """CALL ai.execute_vectorizer for one batch only."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL ai.execute_vectorizer(%s, max_batches => 1)", (name,))


def test_a_change_queued_while_its_key_is_mid_batch_waits_for_that_batch(db, st_model):
    """Drainer A is mid-batch on row 1 (the model server holds its request); the row changes,
    queueing a new item; drainer B must leave that item alone (it returns without a model
    call) until A commits; the next drain stores the new text."""
    proxy = FaultProxy(_model_url(db))
    try:
        v = create_vectorizer(db, rows={1: "The first version."},
                              model=f"ai.embedding_ollama('all-minilm', 384, base_url => '{proxy.url}')")
        proxy.mode = "gate"
        first = started(_one_batch, db, v.name, name="drainer A")
        proxy.wait_held(1, threads=[first])
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE docs SET body = 'The second version.' WHERE id = 1")
        started(execute_vectorizer, db, v.name, name="drainer B").result(30)  # would wait at the gate
        assert proxy.held == 1 and len(proxy.posts("/api/embed")) == 1
        proxy.mode = "pass"
        proxy.release(1)
        first.result(60)
        with psycopg.connect(db) as conn:
            assert _stored(conn) == {1: ["The first version."]} and _queued(conn) == 1
        execute_vectorizer(db, v.name)
    finally:
        proxy.close()
    check_exact(db, st_model)
    with psycopg.connect(db) as conn:
        assert _stored(conn) == {1: ["The second version."]}


def test_the_table_owner_drains_its_vectorizer_without_being_a_superuser(db, app_role, st_model):
    create_vectorizer(db, rows={1: "Owned by app_user."}, owner="app_user")
    execute_vectorizer(app_role, "docs_embedding")
    check_exact(db, st_model)


def _model_url(db: str) -> str:
    """The model server the test database points at (its ai.ollama_host)."""
    with psycopg.connect(db) as conn:
        return conn.execute("SHOW ai.ollama_host").fetchone()[0]


def test_a_key_another_drainer_holds_is_left_for_later(db, st_model):
    """A drainer working on a key holds the engine's transaction advisory lock on it (vectorizer
    id, hashtext of the key's row): another drainer leaves that key's items queued, and
    processes everything else."""
    v = create_vectorizer(db, rows={1: "Held by another drainer.", 2: "Free to take.", 3: "Free too."})
    holder = psycopg.connect(db)
    try:
        holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(ROW(1)::text))", (v.id,))
        execute_vectorizer(db, v.name)
        with psycopg.connect(db) as conn:
            assert _stored(conn) == {2: ["Free to take."], 3: ["Free too."]}
            assert [r[0] for r in conn.execute(f"SELECT id FROM {v.queue}")] == [1]
            assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0] == 0
    finally:
        holder.rollback()  # the other drainer commits: the key is free again
        holder.close()
    execute_vectorizer(db, v.name)
    check_exact(db, st_model)


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


def test_call_inside_a_transaction_block_fails_before_any_work(db):
    _create(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO docs (id, body) VALUES (1, 'one'), (2, 'two')")
    with psycopg.connect(db) as conn:  # psycopg opens a transaction block
        with pytest.raises(psycopg.errors.InvalidTransactionTermination):
            conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT ai.vectorizer_queue_pending('docs_embedding')").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM docs_embedding_store").fetchone()[0] == 0
