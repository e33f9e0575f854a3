"""The main job, end to end: `make demo`.

Starts the project-local cluster and the local model server, installs the ai schema,
and embeds a sentence from SQL.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from rich.console import Console

from .install import install
from .localdb import default_cluster
from .services import start_model_server

DEMO_DB = "pgweave_demo"
SENTENCE = "PostgreSQL keeps the embeddings next to the rows they describe."

console = Console()


def main() -> None:
    """Run the demo and print what each step did."""
    cluster = default_cluster()
    with console.status("starting the local PostgreSQL cluster"):
        admin_dsn = cluster.start()
    console.print(f"[green]✓[/] PostgreSQL running: {admin_dsn}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEMO_DB,)).fetchone():
            conn.execute(f"CREATE DATABASE {DEMO_DB}")
    dsn = cluster.dsn(DEMO_DB)
    with console.status("installing the ai schema"):
        version = install(dsn)
    console.print(f"[green]✓[/] pgweave {version} installed in {dsn}")
    with console.status("starting the model server (loads all-minilm)"):
        server = start_model_server(Path(".pgweave/serve.log"))
    with server:
        console.print(f"[green]✓[/] model server (Ollama API) at {server.url}")
        with psycopg.connect(dsn) as conn:
            conn.execute(f"ALTER DATABASE {DEMO_DB} SET ai.ollama_host = '{server.url}'")
            conn.execute("SELECT set_config('ai.ollama_host', %s, false)", (server.url,))
            sql = "SELECT ai.ollama_embed('all-minilm', %s)"
            embedding = conn.execute(sql, (SENTENCE,)).fetchone()[0]
            dims = conn.execute(f"SELECT vector_dims(({sql}))", (SENTENCE,)).fetchone()[0]
    values = embedding.strip("[]").split(",")
    console.print(f"\n[bold]SELECT ai.ollama_embed('all-minilm', '{SENTENCE}');[/]")
    console.print(f"vector({dims}): [{', '.join(v[:8] for v in values[:6])}, …]")
    console.print(f"\nThe cluster keeps running; connect with: psql {dsn}  (stop: make db-stop)")


if __name__ == "__main__":
    main()
