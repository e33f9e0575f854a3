"""Changing a vectorizer without downtime: alter, re-embed, cancel, and round trips that keep
the embeddings. Every change is made by a table owner who is not a superuser."""

from __future__ import annotations

import threading

import psycopg
import pytest

from pgweave_testing.helpers import APP_OWNER, conn_until, role_dsn, served_inputs
from pgweave import Client

OWNER = "lc_owner"
VIEW = "app.docs_embedding"
SHORT = [f"Short note {i} about PostgreSQL vacuum and visibility maps." for i in range(6)]
LONG = [" ".join(f"Long passage {i}, sentence {j}: the planner weighs index scans against sequential scans."
                 for j in range(6)) for i in range(4)]


def _owner_db(db: str) -> str:
    """The database with a non-superuser owner of schema app and its table app.docs, vectorized
    by all-minilm (384) and processed up to date. Returns the owner's DSN."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER}') "
                     f"THEN CREATE ROLE {OWNER} LOGIN; END IF; END $$")
        conn.execute(f"SELECT ai.grant_ai_usage('{OWNER}')")
        conn.execute(f"CREATE SCHEMA app AUTHORIZATION {OWNER}")
    dsn = role_dsn(db, OWNER)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.docs (id int PRIMARY KEY, body text)")
        for i, body in enumerate(SHORT + LONG):
            conn.execute("INSERT INTO app.docs VALUES (%s, %s)", (i, body))
        conn.execute("""SELECT ai.create_vectorizer('app.docs'::regclass, name => 'docs',
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
            chunking => ai.chunking_recursive_character_text_splitter(200, 0),
            scheduling => ai.scheduling_none())""")
        conn.execute("CALL ai.execute_vectorizer('docs')")
    return dsn


class Searcher(threading.Thread):
    """Searches the live view without pause until stopped; keeps every result count and error."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.counts, self.errors, self.view = dsn, [], [], VIEW
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.counts.append(conn.execute(
                        f"SELECT count(*) FROM ai.semantic_search(NULL::{self.view}, 'how does the planner choose', k => 5)"
                    ).fetchone()[0])
        except Exception as exc:  # collected: the test fails on it
            self.errors.append(exc)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the searcher did not stop"
        assert not self.errors, f"a search failed during the change: {self.errors[0]!r}"
        assert self.counts, "no search ran"


def _store_rows(conn) -> list[tuple]:
    return conn.execute("SELECT id, chunk_seq, chunk, embedded_md5, vector_dims(embedding) "
                        "FROM app.docs_embedding_store ORDER BY id, chunk_seq").fetchall()


def _relations(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind IN ('r', 'v') "
        "ORDER BY relname")]


def test_search_keeps_answering_while_a_new_model_is_built_and_then_takes_over(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        view_oid = conn.execute(f"SELECT '{VIEW}'::regclass::oid").fetchone()[0]
        searcher = Searcher(dsn)
        searcher.start()
        said = conn.execute("SELECT ai.alter_vectorizer('docs', embedding => ai.embedding_openai('all-minilm', 128))"
                            ).fetchone()[0]
        assert "building a new generation" in said
        status = conn.execute("SELECT next_generation FROM ai.vectorizer_status WHERE name = 'docs'").fetchone()
        assert status[0] is not None
        # Written during the build: must be in the new store when it takes over.
        conn.execute("INSERT INTO app.docs VALUES (100, 'Written while the new generation was being built.')")
        conn.execute("CALL ai.execute_vectorizer('docs (next)', 1)")
        assert {r[4] for r in _store_rows(conn)} == {384}, "search answers from the live store during the build"
        conn.execute("CALL ai.execute_vectorizer('docs')")
        searcher.finish()

        rows = _store_rows(conn)
        assert {r[4] for r in rows} == {128}
        assert 100 in {r[0] for r in rows}
        assert conn.execute(f"SELECT '{VIEW}'::regclass::oid").fetchone()[0] == view_oid
        assert conn.execute("SELECT count(*) FROM ai.vectorizer").fetchone()[0] == 1
        assert conn.execute("SELECT config->'embedding'->>'implementation' FROM ai.vectorizer WHERE name = 'docs'"
                            ).fetchone()[0] == "openai"
        assert _relations(conn) == ["docs", "docs_embedding", "docs_embedding_store"]
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors").fetchone()[0] == 0
    assert min(searcher.counts) == 5
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error, match="not building"):
        conn.execute("SELECT ai.finish_alter('docs')")   # the swap happened once, and is over


def _fingerprint(conn) -> list[tuple]:
    """The live store, exactly (embeddings as text)."""
    return conn.execute("SELECT id, chunk_seq, embedded_md5, embedding::text FROM app.docs_embedding_store "
                        "ORDER BY id, chunk_seq").fetchall()


def _cost_of_the_build(conn) -> tuple:
    """(chunks embedded, chunks reused) by the generation that has taken over 'docs'."""
    row = conn.execute("""SELECT chunks_embedded, chunks_reused, next_generation, building_for
        FROM ai.vectorizer_status WHERE name = 'docs'""").fetchone()
    assert row[2:] == (None, None), "the new generation has taken over"
    return row[:2]


def test_cancelling_a_change_leaves_the_live_vectorizer_untouched(db):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before, config = _fingerprint(conn), conn.execute("SELECT config FROM ai.vectorizer").fetchone()[0]
        conn.execute("SELECT ai.alter_vectorizer('docs', chunking => ai.chunking_recursive_character_text_splitter(60, 0))")
        conn.execute("CALL ai.execute_vectorizer('docs (next)', 1)")
        with Client.connect(dsn) as client:
            building = client.status("docs (next)")
            assert client.status("docs").next_generation == building.id and building.building_for is not None
            assert building.backlog_done > 0 and building.chunks_embedded > 0   # progress and cost so far
        assert conn.execute("SELECT ai.cancel_alter('docs')").fetchone()[0] is True
        assert _fingerprint(conn) == before
        assert conn.execute("SELECT config FROM ai.vectorizer").fetchone()[0] == config
        assert _relations(conn) == ["docs", "docs_embedding", "docs_embedding_store"]
        conn.execute("UPDATE app.docs SET body = 'changed after the cancel' WHERE id = 0")
        conn.execute("CALL ai.execute_vectorizer('docs')")
        assert conn.execute("SELECT chunk FROM app.docs_embedding_store WHERE id = 0").fetchone()[0] == \
            "changed after the cancel"
        assert conn.execute("SELECT ai.cancel_alter('docs')").fetchone()[0] is False


def test_new_chunking_embeds_only_the_chunks_whose_text_changed(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The short notes are one chunk under either size; the long passages are cut anew.
        conn.execute("SELECT ai.alter_vectorizer('docs', chunking => ai.chunking_recursive_character_text_splitter(300, 0))")
        calls_before = served_inputs(model_server_url)
        conn.execute("CALL ai.execute_vectorizer('docs (next)')")
        embedded, reused = _cost_of_the_build(conn)
        assert reused == len(SHORT) and embedded > 0
        assert served_inputs(model_server_url) - calls_before == embedded
        worst = conn.execute("SELECT max(embedding <=> ai.ollama_embed('all-minilm', chunk)) "
                             "FROM app.docs_embedding_store").fetchone()[0]
        assert worst < 1e-4, "a reused embedding belongs to its chunk's text"


def test_reembed_embeds_every_chunk_anew(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        chunks = conn.execute("SELECT count(*) FROM app.docs_embedding_store").fetchone()[0]
        conn.execute("SELECT ai.reembed('docs')")
        conn.execute("CALL ai.execute_vectorizer('docs (next)')")
        assert _cost_of_the_build(conn) == (chunks, 0)
        assert conn.execute("SELECT count(*) FROM app.docs_embedding_store").fetchone()[0] == chunks


def test_processing_scheduling_and_name_change_in_place_without_a_model_call(db, model_server_url):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = _fingerprint(conn)
        calls_before = served_inputs(model_server_url)
        said = conn.execute("""SELECT ai.alter_vectorizer('docs', processing => '{"batch_size": 7}',
            scheduling => ai.scheduling_default(), indexing => ai.indexing_none(), new_name => 'notes')""").fetchone()[0]
        assert "building" not in said and "renamed" in said
        row = conn.execute("SELECT next_generation, schedule FROM ai.vectorizer_status WHERE name = 'notes'").fetchone()
        assert row == (None, "background")
        assert conn.execute("SELECT config->'processing'->>'batch_size' FROM ai.vectorizer").fetchone()[0] == "7"
        assert _fingerprint(conn) == before and served_inputs(model_server_url) == calls_before
        assert conn.execute("SELECT ai.alter_vectorizer('notes')").fetchone()[0] == "nothing to change"


def test_only_the_owner_may_change_a_vectorizer(db):
    _owner_db(db)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lc_other') "
                     "THEN CREATE ROLE lc_other LOGIN; END IF; END $$")
        conn.execute("SELECT ai.grant_ai_usage('lc_other')")
    with psycopg.connect(role_dsn(db, OWNER), autocommit=True) as conn:
        conn.execute("SELECT ai.reembed('docs')")
        gid = conn.execute("SELECT id FROM ai.vectorizer WHERE generation_of IS NOT NULL").fetchone()[0]
        assert conn.execute("SELECT owner FROM ai.vectorizer WHERE id = %s", (gid,)).fetchone()[0] == OWNER
    with psycopg.connect(role_dsn(db, "lc_other"), autocommit=True) as conn:
        for call in ("SELECT ai.alter_vectorizer('docs', new_name => 'mine')", "SELECT ai.reembed('docs')",
                     "SELECT ai.cancel_alter('docs')", "SELECT ai.finish_alter('docs')",
                     f"SELECT ai._take_over({gid})", "SELECT ai.drop_vectorizer_store('app.docs_embedding')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(call)
    with psycopg.connect(role_dsn(db, OWNER), autocommit=True) as conn:
        assert conn.execute("SELECT name FROM ai.vectorizer ORDER BY id").fetchall() == [("docs",), ("docs (next)",)]


# -- round trips that keep the embeddings ---------------------------------------------------------

def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from pgweave.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_show_drop_create_round_trip_adopts_the_kept_store_without_embedding_again(db, model_server_url, tmp_path):
    dsn = _owner_db(db)
    spec = tmp_path / "docs.json"
    spec.write_text(_cli("vectorizers", "show", "docs", "--dsn", dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = _fingerprint(conn)
    assert "adopts them" in _cli("vectorizers", "drop", "docs", "--dsn", dsn)
    calls_before = served_inputs(model_server_url)
    _cli("vectorizers", "create", str(spec), "--dsn", dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL ai.execute_vectorizer('docs')")
        assert _fingerprint(conn) == before
        assert conn.execute("SELECT chunks_reused, chunks_embedded FROM ai.vectorizer_status").fetchone() == \
            (len(before), 0)
    assert served_inputs(model_server_url) == calls_before


def test_a_kept_store_of_another_model_is_not_adopted_and_the_error_says_how_to_drop_it(db, tmp_path):
    import json

    from typer.testing import CliRunner

    from pgweave.cli import app

    dsn = _owner_db(db)
    definition = json.loads(_cli("vectorizers", "show", "docs", "--dsn", dsn))
    definition["embedding"] = {"implementation": "openai", "model": "all-minilm", "dimensions": 128}
    spec = tmp_path / "docs.json"
    spec.write_text(json.dumps(definition))
    _cli("vectorizers", "drop", "docs", "--dsn", dsn)
    refused = CliRunner().invoke(app, ["vectorizers", "create", str(spec), "--dsn", dsn])
    assert refused.exit_code != 0
    assert "holds embeddings of" in refused.output and "drop_vectorizer_store('app.docs_embedding')" in refused.output
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM app.docs_embedding_store").fetchone()[0] > 0, "nothing lost"
    _cli("vectorizers", "drop-store", "app.docs_embedding", "--dsn", dsn)
    _cli("vectorizers", "create", str(spec), "--dsn", dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL ai.execute_vectorizer('docs')")
        assert conn.execute("SELECT DISTINCT vector_dims(embedding) FROM app.docs_embedding_store").fetchall() == [(128,)]


def test_show_alembic_prints_only_what_differs_from_the_defaults(db):
    dsn = _owner_db(db)
    shown = _cli("vectorizers", "show", "docs", "--alembic", "--dsn", dsn)
    arguments = {line.strip().split("=", 1)[0] for line in shown.splitlines()[2:-1]}
    assert arguments == {"name", "loading", "embedding", "chunking"}, shown
    assert "'chunk_size': 200" in shown
    assert "'none'" in _cli("vectorizers", "show", "docs", "--alembic", "--scheduling", "--dsn", dsn)


# -- alembic: a drop's reverse adopts the kept store; autogenerate leaves pgweave's tables alone ---

REVISION = '''
from alembic import op
from pgweave import ai

revision = "0001"
down_revision = None

DEFINITION = dict(source="app.docs", view_schema="app", view_name="docs_embedding",
                  loading=ai.loading_column("body"), embedding=ai.embedding_ollama("all-minilm", 384),
                  chunking=ai.chunking_recursive_character_text_splitter(200, 0),
                  scheduling=ai.scheduling_none())


def upgrade():
    op.drop_vectorizer("docs", definition=DEFINITION)


def downgrade():
    op.invoke(pgweave.alembic.DropVectorizerOp("docs", definition=DEFINITION).reverse())


import pgweave.alembic
'''


def _alembic_project(tmp_path, dsn: str, filtered: bool):
    """`alembic init` with the application's model of app.docs, and (filtered) the one documented
    line that hands pgweave.alembic.include_object to context.configure."""
    import subprocess
    import sys

    from test_alembic_ops import _sqlalchemy_url

    subprocess.run([sys.executable, "-m", "alembic", "init", "migrations"], cwd=tmp_path, check=True,
                   capture_output=True)
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("sqlalchemy.url = driver://user:pass@localhost/dbname",
                                           "sqlalchemy.url = " + _sqlalchemy_url(dsn).replace("%", "%%")))
    env = tmp_path / "migrations" / "env.py"
    text = env.read_text().replace("target_metadata = None", """import sqlalchemy as sa
import pgweave.alembic
target_metadata = sa.MetaData()
sa.Table("docs", target_metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("body", sa.Text), schema="app")""")
    extra = "include_schemas=True, version_table_schema='app'"
    if filtered:
        extra += ", include_object=pgweave.alembic.include_object"
    env.write_text(text.replace("target_metadata=target_metadata", f"target_metadata=target_metadata, {extra}"))
    (tmp_path / "migrations" / "versions" / "0001_retire.py").write_text(REVISION)

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "alembic", *args], cwd=tmp_path, text=True, capture_output=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done
    return run


def test_a_drop_reversed_by_alembic_recreates_the_vectorizer_over_its_kept_store(db, model_server_url, tmp_path):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = _fingerprint(conn)
    alembic = _alembic_project(tmp_path, dsn, filtered=True)
    alembic("upgrade", "head")
    calls_before = served_inputs(model_server_url)
    alembic("downgrade", "base")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL ai.execute_vectorizer('docs')")
        assert _fingerprint(conn) == before
    assert served_inputs(model_server_url) == calls_before


@pytest.mark.parametrize("filtered", [True, False])
def test_autogenerate_proposes_nothing_for_pgweave_tables_with_the_documented_line(db, tmp_path, filtered):
    dsn = _owner_db(db)
    alembic = _alembic_project(tmp_path, dsn, filtered=filtered)
    alembic("stamp", "head")
    done = alembic("revision", "--autogenerate", "-m", "check")
    proposed = next((tmp_path / "migrations" / "versions").glob("*_check.py")).read_text()
    assert "Did not recognize type" not in done.stderr
    if filtered:
        assert "op.drop_table" not in proposed and "op.create_table" not in proposed, proposed
        assert "commands auto generated by Alembic - please adjust! ###\n    pass" in proposed
    else:   # the line is what keeps the store and the queues out
        assert "op.drop_table('docs_embedding_store', schema='app')" in proposed


def test_a_change_in_the_background_takes_over_while_searches_go_on(background_db):
    owner = role_dsn(background_db, APP_OWNER)
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.bg_notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO app.bg_notes SELECT i, 'Background note ' || i || ' about autovacuum.' "
                     "FROM generate_series(1, 20) i")
        conn.execute("""SELECT ai.create_vectorizer('app.bg_notes'::regclass, name => 'bg_notes',
            loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384))""")
        conn_until(conn, "SELECT count(*) = 20 FROM app.bg_notes_embedding_store", 120)
        searcher = Searcher(owner)
        searcher.view = "app.bg_notes_embedding"
        searcher.start()
        conn.execute("SELECT ai.alter_vectorizer('bg_notes', formatting => ai.formatting_python_template('Note: $chunk'))")
        conn.execute("INSERT INTO app.bg_notes VALUES (21, 'Written during the build.')")
        conn_until(conn, "SELECT count(*) = 1 AND bool_and(config->'formatting'->>'template' = 'Note: $chunk') "
                         "FROM ai.vectorizer WHERE source_relid = 'app.bg_notes'::regclass", 180)
        conn_until(conn, "SELECT count(*) = 21 FROM app.bg_notes_embedding_store", 120)
        searcher.finish()
        assert conn.execute("SELECT count(*) FROM ai.vectorizer_errors WHERE name = 'bg_notes'").fetchone()[0] == 0
    assert min(searcher.counts) == 5


def test_the_view_keeps_using_the_store_index_after_a_change_of_dimensions(db):
    dsn = _owner_db(db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT ai.alter_vectorizer('docs', embedding => ai.embedding_openai('all-minilm', 128), "
                     "indexing => ai.indexing_hnsw(min_rows => 1))")
        conn.execute("CALL ai.execute_vectorizer('docs')")
        conn.execute("CALL ai.execute_vectorizer('docs')")   # idle: the index is made
        probe = conn.execute("SELECT embedding::text FROM app.docs_embedding_store LIMIT 1").fetchone()[0]
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT id FROM app.docs_embedding ORDER BY embedding <=> %s::vector LIMIT 3", (probe,)))
        assert "Index Scan using docs_embedding_store_next_embedding_hnsw" in plan, plan


def test_op_alter_vectorizer_reverses_to_its_previous_settings_and_renders_as_python():
    from pgweave import ai
    from pgweave.alembic import AlterVectorizerOp, _render_alter

    change = AlterVectorizerOp("docs", new_name="notes", embedding=ai.embedding_ollama("all-minilm", 384),
                               previous={"embedding": ai.embedding_openai("all-minilm", 128)})
    back = change.reverse()
    assert (back.name, back.arguments["new_name"]) == ("notes", "docs")
    assert repr(back.arguments["embedding"]) == "ai.embedding_openai('all-minilm', 128)"
    again = back.reverse()
    assert (again.name, again.arguments) == (change.name, change.arguments)
    with pytest.raises(ValueError, match="previous="):
        AlterVectorizerOp("docs", processing={"batch_size": 5}).reverse()

    class Context:
        imports: set = set()
    assert _render_alter(Context(), AlterVectorizerOp("docs", processing={"batch_size": 5})) == \
        "op.alter_vectorizer('docs', processing={'batch_size': 5})"
