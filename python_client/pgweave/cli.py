"""The `pgweave` command line."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__

app = typer.Typer(
    help="pgweave: in-database AI for PostgreSQL.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="The project-local throwaway PostgreSQL cluster (.pgweave/db).",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DsnOption = Annotated[
    Optional[str],
    typer.Option("--dsn", help="libpq DSN; default: $PGWEAVE_DSN, then $DATABASE_URL, then libpq defaults"),
]


def resolve_dsn(dsn: str | None) -> str:
    """--dsn, then PGWEAVE_DSN, then DATABASE_URL, then '' (libpq's own defaults)."""
    return dsn or os.environ.get("PGWEAVE_DSN") or os.environ.get("DATABASE_URL") or ""


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the pgweave client version."""
    console.print(__version__)


@app.command()
def install(
    dsn_arg: Annotated[Optional[str], typer.Argument(metavar="DSN", help="database to install into")] = None,
    dsn: DsnOption = None,
    revision: Annotated[str, typer.Option(help="alembic revision to upgrade to")] = "head",
) -> None:
    """Install or upgrade the `ai` schema (extensions, tables, functions, in-database Python)."""
    import psycopg

    from .install import install as do_install

    target = dsn_arg or resolve_dsn(dsn)
    try:
        installed = do_install(target, revision)
    except Exception as exc:  # alembic and SQLAlchemy wrap driver errors; show the database's words
        cause = getattr(exc, "orig", None) or exc
        if isinstance(cause, psycopg.OperationalError):
            _fail(f"cannot connect: {str(cause).strip()}\nhint: pass a DSN, e.g. "
                  "`pgweave install postgresql://user@host:5432/db`, or set PGWEAVE_DSN", 2)
        _fail(f"install failed: {str(cause).strip()}")
    console.print(f"[green]pgweave {installed} installed[/]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (Ollama's default is 11434)")] = 11434,
    model_dir: Annotated[Optional[list[str]], typer.Option(
        "--model-dir", help="extra sentence-transformers directory to serve, as PATH or NAME=PATH")] = None,
    generate_model_dir: Annotated[Optional[list[str]], typer.Option(
        "--generate-model-dir", help="transformers causal-LM directory to serve for /api/generate, "
        "/api/chat and /v1/chat/completions, as PATH or NAME=PATH")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the local Ollama-compatible model server (serves all-minilm offline)."""
    try:
        from .serve import run
    except ImportError as exc:
        _fail(f"the model server needs the serve extra ({exc.name} is missing): "
              "pip install torch==2.13.0 'pgweave[serve]'")
    run(host=host, port=port, model_dirs=model_dir or [], generate_dirs=generate_model_dir or [],
        log_level=log_level)


@app.command()
def worker(
    dsn: DsnOption = None,
    vectorizer: Annotated[Optional[list[str]], typer.Option(
        "--vectorizer", "-v", help="vectorizer name to process (repeatable); default: all")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="parallel batches per vectorizer")] = 1,
    once: Annotated[bool, typer.Option("--once", help="drain the queues once and exit")] = False,
    poll_interval: Annotated[float, typer.Option(help="seconds between polls when no NOTIFY arrives")] = 5.0,
) -> None:
    """Process vectorizer queues from outside Postgres (woken by LISTEN/NOTIFY)."""
    import logging
    import signal
    import threading

    import psycopg

    from .worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stats = run_worker(resolve_dsn(dsn), vectorizer, concurrency, once, poll_interval, stop)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    except psycopg.OperationalError as exc:
        _fail(f"cannot connect: {str(exc).strip()}", 2)
    except psycopg.Error as exc:
        _fail(str(exc).strip())
    if stats.errors:
        _fail(f"{len(stats.errors)} batch run(s) failed; last: {stats.errors[-1]}")
    console.print(f"[green]done[/]: {stats.rounds} round(s), {stats.calls} procedure call(s)")


@db_app.command("start")
def db_start() -> None:
    """Create (if needed) and start the local cluster; print its DSN."""
    from .localdb import LocalDBError, default_cluster

    try:
        print(default_cluster().start())
    except LocalDBError as exc:
        _fail(str(exc))


@db_app.command("stop")
def db_stop() -> None:
    """Stop the local cluster."""
    from .localdb import default_cluster

    default_cluster().stop()


@db_app.command("dsn")
def db_dsn(dbname: Annotated[str, typer.Argument(help="database name")] = "postgres") -> None:
    """Print the local cluster's DSN (for PGWEAVE_DSN=$(pgweave db dsn))."""
    from .localdb import LocalDBError, default_cluster

    try:
        print(default_cluster().dsn(dbname))
    except LocalDBError as exc:
        _fail(str(exc))


@db_app.command("status")
def db_status() -> None:
    """Say whether the local cluster runs; exit 3 when it does not."""
    from .localdb import default_cluster

    cluster = default_cluster()
    if cluster.running():
        console.print(f"running: {cluster.dsn()}")
    else:
        console.print("stopped")
        raise typer.Exit(3)


@db_app.command("destroy")
def db_destroy() -> None:
    """Stop the local cluster and delete its data."""
    from .localdb import default_cluster

    default_cluster().destroy()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
