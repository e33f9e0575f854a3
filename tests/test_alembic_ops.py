"""op.create_vectorizer / op.drop_vectorizer in a DBA's own alembic project, against the real database.

The project is made by `alembic init` in a temp dir; its env.py only gains `import pgweave.alembic`.
Revisions: 1 creates a table and a vectorizer, 2 changes the vectorizer (drop all, create anew),
3 drops it keeping its data (reversible through the definition it was given).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from pgweave_testing.helpers import execute_vectorizer
from pgweave import ai
from pgweave.alembic import CreateVectorizerOp, DropVectorizerOp, render_create_vectorizer

REVISIONS = {
    "0001_blog": '''
        """A blog table and its vectorizer."""
        from alembic import op
        from pgweave import ai

        revision = "0001"
        down_revision = None

        def upgrade():
            op.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, contents text)")
            op.execute("""INSERT INTO blog VALUES (1, 'Cats', 'Cats purr: they are content.'),
                                                  (2, 'Rust', 'Rust is memory safe.')""")
            op.create_vectorizer(
                "blog", name="blog_embedding",
                loading=ai.loading_column("contents"),
                embedding=ai.embedding_ollama("all-minilm", 384),
                chunking=ai.chunking_none(),
                scheduling=ai.scheduling_none(),
            )

        def downgrade():
            op.drop_vectorizer("blog_embedding", drop_all=True)
            op.execute("DROP TABLE blog")
    ''',
    "0002_change": '''
        """Embed the title with the chunk: a changed vectorizer is dropped and created anew."""
        from alembic import op
        from pgweave import ai

        revision = "0002"
        down_revision = "0001"

        COMMON = dict(name="blog_embedding", loading=ai.loading_column("contents"),
                      embedding=ai.embedding_ollama("all-minilm", 384), chunking=ai.chunking_none(),
                      scheduling=ai.scheduling_none())

        def upgrade():
            op.drop_vectorizer("blog_embedding", drop_all=True)
            op.create_vectorizer("blog", formatting=ai.formatting_python_template("$title: $chunk"), **COMMON)

        def downgrade():
            op.drop_vectorizer("blog_embedding", drop_all=True)
            op.create_vectorizer("blog", **COMMON)
    ''',
    "0003_retire": '''
        """Retire the vectorizer but keep its embeddings (drop_all defaults to False)."""
        from alembic import op
        from pgweave import ai
        from pgweave.alembic import DropVectorizerOp

        revision = "0003"
        down_revision = "0002"

        DEFINITION = dict(source="public.blog", view_schema="public", view_name="blog_embedding",
                          target_schema="public", target_table="blog_embedding_store",
                          loading=ai.loading_column("contents"),
                          embedding=ai.embedding_ollama("all-minilm", 384), chunking=ai.chunking_none(),
                          formatting=ai.formatting_python_template("$title: $chunk"),
                          scheduling=ai.scheduling_none())

        def upgrade():
            op.drop_vectorizer("blog_embedding", definition=DEFINITION)

        def downgrade():
            op.invoke(DropVectorizerOp("blog_embedding", definition=DEFINITION).reverse())
    ''',
}


def _sqlalchemy_url(dsn: str) -> str:
    """The libpq DSN as an SQLAlchemy URL for the psycopg driver."""
    p = psycopg.conninfo.conninfo_to_dict(dsn)
    host = p.get("host")
    socket = host and host.startswith("/")
    return URL.create("postgresql+psycopg", username=p.get("user"), password=p.get("password"),
                      host=None if socket else host, port=int(p["port"]) if p.get("port") else None,
                      database=p.get("dbname"), query={"host": host} if socket else {}
                      ).render_as_string(hide_password=False)


@pytest.fixture
def project(tmp_path, db) -> Path:
    """`alembic init` + `import pgweave.alembic` in env.py + three revisions, pointed at ``db``."""
    subprocess.run([sys.executable, "-m", "alembic", "init", "migrations"], cwd=tmp_path, check=True,
                   capture_output=True)
    ini = tmp_path / "alembic.ini"
    url = _sqlalchemy_url(db).replace("%", "%%")
    ini.write_text(ini.read_text().replace("sqlalchemy.url = driver://user:pass@localhost/dbname",
                                           f"sqlalchemy.url = {url}"))
    env = tmp_path / "migrations" / "env.py"
    env.write_text(env.read_text().replace(
        "from alembic import context",
        "from alembic import context\n\nimport pgweave.alembic  # op.create_vectorizer, op.drop_vectorizer"))
    for name, body in REVISIONS.items():
        (tmp_path / "migrations" / "versions" / f"{name}.py").write_text(textwrap.dedent(body))
    return tmp_path


def _alembic(project: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "alembic", *args], cwd=project, text=True,
                            capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _state(db: str) -> dict:
    """What exists: vectorizers with their template, and the blog's tables and views."""
    with psycopg.connect(db) as conn:
        vectorizers = dict(conn.execute(
            "SELECT name, config->'formatting'->>'template' FROM ai.vectorizer").fetchall())
        relations = {r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'blog%' AND relkind IN ('r', 'v')")}
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '_vectorizer_src_trg_%'"
                                ).fetchone()[0]
        queues = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'ai' "
                              "AND tablename LIKE '_vectorizer_q_%'").fetchone()[0]
    return {"vectorizers": vectorizers, "relations": relations, "triggers": triggers, "queues": queues}


def test_vectorizers_are_created_changed_and_removed_in_ordinary_revisions(project, db):
    _alembic(project, "upgrade", "0001")
    assert _state(db) == {"vectorizers": {"blog_embedding": "$chunk"},
                          "relations": {"blog", "blog_embedding", "blog_embedding_store"},
                          "triggers": 2, "queues": 2}
    execute_vectorizer(db, "blog_embedding")   # the existing rows were queued by the revision
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM blog_embedding").fetchone()[0] == 2

    _alembic(project, "upgrade", "0002")
    assert _state(db)["vectorizers"] == {"blog_embedding": "$title: $chunk"}
    execute_vectorizer(db, "blog_embedding")

    _alembic(project, "upgrade", "head")       # retired, embeddings kept
    assert _state(db) == {"vectorizers": {},
                          "relations": {"blog", "blog_embedding", "blog_embedding_store"},
                          "triggers": 0, "queues": 0}
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM blog_embedding").fetchone()[0] == 2

    _alembic(project, "downgrade", "0002")     # recreated from the definition, over the kept store
    assert _state(db)["vectorizers"] == {"blog_embedding": "$title: $chunk"}
    assert _state(db)["triggers"] == 2

    _alembic(project, "downgrade", "0001")
    assert _state(db)["vectorizers"] == {"blog_embedding": "$chunk"}

    _alembic(project, "downgrade", "base")     # everything the revisions made is gone
    assert _state(db) == {"vectorizers": {}, "relations": set(), "triggers": 0, "queues": 0}

    _alembic(project, "upgrade", "head")       # and the whole history replays
    assert _state(db)["relations"] == {"blog", "blog_embedding", "blog_embedding_store"}


def test_offline_mode_prints_the_sql_api_calls(project):
    sql = _alembic(project, "upgrade", "0001", "--sql")
    assert "SELECT ai.create_vectorizer('blog'::regclass, \"name\" => 'blog_embedding'" in sql
    assert "\"embedding\" => \"ai\".\"embedding_ollama\"('all-minilm', 384)" in sql
    downgrade = _alembic(project, "downgrade", "0001:base", "--sql")
    assert "SELECT \"ai\".\"drop_vectorizer\"('blog_embedding', \"drop_all\" => true)" in downgrade


def test_operations_reverse_each_other_and_render_as_python():
    create = CreateVectorizerOp("blog", name="blog_embedding", embedding=ai.embedding_ollama("all-minilm", 384),
                                processing={"batch_size": 10})
    drop = create.reverse()
    assert (drop.name, drop.drop_all) == ("blog_embedding", True)
    again = drop.reverse()
    assert again.definition() == create.definition()
    assert not DropVectorizerOp("x").drop_all   # the safe default keeps the data
    with pytest.raises(ValueError, match="definition"):
        DropVectorizerOp("x").reverse()
    with pytest.raises(ValueError, match="name="):
        CreateVectorizerOp("blog").reverse()
    assert render_create_vectorizer(create.definition()) == (
        "op.create_vectorizer(\n    'blog',\n    name='blog_embedding',\n"
        "    embedding=ai.embedding_ollama('all-minilm', 384),\n    processing={'batch_size': 10},\n)")
