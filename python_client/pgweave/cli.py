"""The `pgweave` command line.

Exit codes, for scripts: 0 ok; 1 the command found problems (failed items, recorded errors)
or the database refused the operation; 2 usage errors, no connection, pgweave not
installed, an unknown vectorizer or an invalid argument; 3 not in sync before --timeout
(and `db status`: the local cluster is stopped); 130 interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .client import resolve_dsn  # noqa: F401  (the CLI's DSN order: --dsn, env, libpq)

if TYPE_CHECKING:
    from .client import Client, SyncProgress, VectorizerStatus
    from .errors import PgweaveError

EXIT_PROBLEMS, EXIT_USAGE, EXIT_NOT_IN_SYNC, EXIT_INTERRUPTED = 1, 2, 3, 130

EXIT_CODES = ("Exit codes: 0 ok; 1 problems found (failed items, errors) or the database refused; "
              "2 usage, connection, not installed, unknown vectorizer; 3 not in sync before --timeout.")

app = typer.Typer(
    help="pgweave: in-database AI for PostgreSQL.",
    epilog=EXIT_CODES,
    rich_markup_mode="markdown",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="The project-local throwaway PostgreSQL cluster (.pgweave/db).",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")
vectorizers_app = typer.Typer(help="List, show, create (from JSON) and drop vectorizers.",
                              invoke_without_command=True)
app.add_typer(vectorizers_app, name="vectorizers")
from .serve.commands import models_app  # noqa: E402
app.add_typer(models_app, name="models")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DsnOption = Annotated[
    Optional[str],
    typer.Option("--dsn", help="libpq DSN; default: $PGWEAVE_DSN, then $DATABASE_URL, then libpq defaults"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON only (on stdout)")]


def _fail(message: str, code: int = 1) -> None:
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(message, markup=False, highlight=False)
    raise typer.Exit(code)


def _fail_with(exc: "PgweaveError") -> None:
    """Print a client error (message, detail, hint) and exit with its code."""
    from .errors import AlreadyExists, ConnectionFailed, InvalidArgument, NotFound, NotInstalled

    usage = (ConnectionFailed, NotInstalled, NotFound, InvalidArgument, AlreadyExists)
    err_console.print("[bold red]error:[/] ", end="")
    err_console.print(str(exc), markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE if isinstance(exc, usage) else EXIT_PROBLEMS)


@contextmanager
def _client(dsn: str | None) -> Iterator["Client"]:
    """A connected client; every client error becomes a message and an exit code."""
    from .client import Client
    from .errors import PgweaveError

    try:
        with Client.connect(resolve_dsn(dsn)) as client:
            yield client
    except PgweaveError as exc:
        _fail_with(exc)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED)


def _jsonable(value: Any) -> Any:
    """Dataclasses (with their in_sync), datetimes and vectors as plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        data = {k: _jsonable(v) for k, v in asdict(value).items()}
        if hasattr(type(value), "in_sync"):
            data["in_sync"] = value.in_sync
        return data
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_list"):     # pgvector.Vector
        return value.to_list()
    if hasattr(value, "tolist"):      # numpy arrays and scalars
        return value.tolist()
    return value


def _print_json(value: Any, *, indent: int | None = 2) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=indent, default=str) + "\n")
    sys.stdout.flush()


def _ago(moment: datetime | None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' (or '-')."""
    if moment is None:
        return "-"
    seconds = max(0, int((datetime.now(timezone.utc) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


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


# -- operating vectorizers -------------------------------------------------------------------

def _status_table(statuses: list["VectorizerStatus"]) -> Table:
    table = Table(header_style="bold")
    table.add_column("vectorizer", overflow="fold")
    for column in ("pending", "failed", "chunks"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("schedule", no_wrap=True)
    table.add_column("last success", no_wrap=True)
    table.add_column("last error", overflow="fold", ratio=1)
    for s in statuses:
        failed = _count(s.failed_items)
        table.add_row(
            f"[bold]{escape(s.name)}[/]\n[dim]{escape(f'{s.source_table} → {s.view}')}[/]",
            _count(s.pending_items) if s.pending_items else "[green]0[/]",
            f"[red]{failed}[/]" if s.failed_items else failed,
            _count(s.stored_chunks), s.schedule or "-", _ago(s.last_success_at),
            escape(f"{_ago(s.last_error_at)}: {s.last_error}") if s.last_error else "-")
    return table


class ProgressBoard:
    """Live progress bars, one per vectorizer: done = items processed since the first look,
    total = done + pending now (so writes during the drain grow the total)."""

    def __init__(self, output: Console):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=output)
        self.tasks: dict[str, Any] = {}
        self.first: dict[str, "VectorizerStatus"] = {}

    def __enter__(self) -> "ProgressBoard":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.tasks:   # started by the first show(): an early error leaves no empty frame
            self.progress.stop()

    def show(self, p: "SyncProgress") -> None:
        """Draw one vectorizer's progress."""
        s = p.status
        info = (f"pending {_count(s.pending_items)} · failed {_count(s.failed_items)} · "
                f"chunks {_count(s.stored_chunks)}")
        total, done = (p.total, p.done) if p.total else (1, 1)   # nothing to do: a full bar
        if not self.tasks:
            self.progress.start()
        if s.name not in self.tasks:
            self.tasks[s.name] = self.progress.add_task(escape(s.name), total=total, info=info)
        self.progress.update(self.tasks[s.name], total=total, completed=done, info=info)

    def show_all(self, statuses: list["VectorizerStatus"], elapsed: float) -> None:
        from .client import SyncProgress

        for s in statuses:
            self.show(SyncProgress.between(self.first.setdefault(s.name, s), s, elapsed))


@app.command(epilog=EXIT_CODES)
def status(
    names: Annotated[Optional[list[str]], typer.Argument(
        metavar="NAME", help="vectorizers to show; default: all")] = None,
    dsn: DsnOption = None,
    json_out: JsonOption = False,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="keep refreshing, with a progress bar per vectorizer (Ctrl-C stops)")] = False,
    interval: Annotated[float, typer.Option(min=0.05, help="seconds between refreshes with --watch")] = 1.0,
) -> None:
    """Show each vectorizer's queue, failures, chunks and last outcome (ai.vectorizer_status).

    Exits 1 when a shown vectorizer has failed (parked) items: see `pgweave errors` and
    `pgweave retry NAME`. With --watch --json, prints one JSON array per refresh.
    """
    with _client(dsn) as client:
        def fetch() -> list["VectorizerStatus"]:
            return [client.status(n) for n in names] if names else client.status()

        statuses = fetch()
        if watch:
            start = time.monotonic()
            try:
                if json_out:
                    while True:
                        _print_json(statuses, indent=None)
                        time.sleep(interval)
                        statuses = fetch()
                with ProgressBoard(console) as board:
                    while True:
                        board.show_all(statuses, time.monotonic() - start)
                        time.sleep(interval)
                        statuses = fetch()
            except KeyboardInterrupt:   # the normal way to stop watching
                pass
        elif json_out:
            _print_json(statuses)
        elif statuses:
            console.print(_status_table(statuses))
        else:
            console.print("no vectorizers: create one with ai.create_vectorizer(...) "
                          "or `pgweave vectorizers create`")
    if any(s.failed_items for s in statuses):
        raise typer.Exit(EXIT_PROBLEMS)


@app.command(epilog=EXIT_CODES)
def wait(
    name: Annotated[str, typer.Argument(help="the vectorizer to wait for")],
    dsn: DsnOption = None,
    json_out: JsonOption = False,
    timeout: Annotated[Optional[float], typer.Option(
        min=0, help="give up after this many seconds (exit 3); default: wait for ever")] = None,
    interval: Annotated[float, typer.Option(min=0.05, help="seconds between looks at the queue")] = 0.5,
) -> None:
    """Wait until a vectorizer's queue is drained, with a live progress bar.

    Something must drain it meanwhile: the pg_cron job, `pgweave worker`, or
    CALL ai.execute_vectorizer. Exits 0 in sync, 1 in sync but with failed (parked) items,
    3 when items are still pending at --timeout. --json prints the final status only.
    """
    from .errors import NotInSync

    with _client(dsn) as client:
        try:
            if json_out:
                final = client.wait(name, timeout=timeout, poll_interval=interval)
            else:
                with ProgressBoard(console) as board:
                    final = client.wait(name, timeout=timeout, poll_interval=interval,
                                        on_progress=board.show)
        except NotInSync as exc:
            if json_out:
                _print_json(exc.status)
            err_console.print(f"[bold yellow]not in sync:[/] {exc.message}", highlight=False)
            raise typer.Exit(EXIT_NOT_IN_SYNC)
    if json_out:
        _print_json(final)
    else:
        console.print(f"[green]{final.name} is in sync[/]: {_count(final.stored_chunks)} chunk(s) stored, "
                      f"{_count(final.failed_items)} failed item(s)", highlight=False)
    if final.failed_items:
        if not json_out:
            err_console.print(f"{final.failed_items} item(s) failed: `pgweave errors {final.name}`, "
                              f"then `pgweave retry {final.name}`", highlight=False)
        raise typer.Exit(EXIT_PROBLEMS)


@app.command(epilog=EXIT_CODES)
def errors(
    name: Annotated[Optional[str], typer.Argument(help="only this vectorizer's errors")] = None,
    dsn: DsnOption = None,
    json_out: JsonOption = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="newest N errors")] = 20,
) -> None:
    """List recorded vectorizer errors, newest first (ai.vectorizer_errors). Exits 1 when any."""
    with _client(dsn) as client:
        found = client.errors(name, limit=limit)
    if json_out:
        _print_json(found)
    elif found:
        table = Table(header_style="bold")
        table.add_column("recorded", no_wrap=True)
        table.add_column("vectorizer", overflow="fold")
        table.add_column("message", overflow="fold", ratio=1)
        for e in found:
            hint = (e.details or {}).get("hint")
            message = escape(e.message) + (f"\n[dim]hint: {escape(hint)}[/]" if hint else "")
            table.add_row(f"{e.recorded:%Y-%m-%d %H:%M:%S}\n[dim]{_ago(e.recorded)}[/]",
                          escape(e.name or str(e.vectorizer_id)), message)
        console.print(table)
    else:
        console.print("no errors recorded")
    if found:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command(epilog=EXIT_CODES)
def retry(
    names: Annotated[list[str], typer.Argument(metavar="NAME", help="vectorizers whose failed items to retry")],
    dsn: DsnOption = None,
    json_out: JsonOption = False,
) -> None:
    """Move failed (parked) items back to the queue and make backed-off items due now (ai.retry_failed)."""
    with _client(dsn) as client:
        moved = {n: client.retry_failed(n) for n in names}
    if json_out:
        _print_json(moved)
        return
    for n, count in moved.items():
        console.print(f"{n}: {count:,} item(s) back in the queue", highlight=False)


# -- search ------------------------------------------------------------------------------------

def _parse_filter(raw: str | None) -> dict | None:
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        _fail(f"--filter is not JSON: {exc}\nhint: e.g. --filter '{{\"lang\": \"en\"}}'", EXIT_USAGE)
    if not isinstance(parsed, dict):
        _fail("--filter must be a JSON object, e.g. '{\"lang\": [\"en\", \"de\"]}'", EXIT_USAGE)
    return parsed


def _hit_json(result: Any) -> dict:
    """A search result for --json: without the embedding (384+ numbers per hit)."""
    data = _jsonable(result)
    data["row"] = {k: v for k, v in data["row"].items() if k != "embedding"}
    return data


VectorizerOption = Annotated[str, typer.Option("--vectorizer", "-v", help="the vectorizer to search")]
FilterOption = Annotated[Optional[str], typer.Option(
    "--filter", help='JSON object of column = value conditions, e.g. \'{"lang": ["en", "de"]}\'')]
WhereOption = Annotated[Optional[str], typer.Option(
    "--where", help="an SQL condition over the view's columns (run with your rights)")]


@app.command(epilog=EXIT_CODES)
def search(
    query: Annotated[str, typer.Argument(help="what to look for, in plain words")],
    vectorizer: VectorizerOption,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="number of results")] = 10,
    hybrid: Annotated[bool, typer.Option(
        "--hybrid", help="fuse full-text and vector results (ai.hybrid_search)")] = False,
    filter: FilterOption = None,
    where: WhereOption = None,
    dsn: DsnOption = None,
    json_out: JsonOption = False,
) -> None:
    """Search a vectorizer's chunks (ai.semantic_search, or ai.hybrid_search with --hybrid).

    Prints rank, distance (or fused score), the source row's key and the chunk. No results
    is not an error (exit 0).
    """
    conditions = _parse_filter(filter)
    with _client(dsn) as client:
        if hybrid:
            results = client.hybrid_search(vectorizer, query, k, filter=conditions, where_clause=where)
        else:
            results = client.semantic_search(vectorizer, query, k, filter=conditions, where_clause=where)
    if json_out:
        _print_json([_hit_json(r) for r in results])
        return
    if not results:
        console.print("no results")
        return
    table = Table(header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score" if hybrid else "distance", justify="right", no_wrap=True)
    table.add_column("key", no_wrap=True)
    table.add_column("chunk", overflow="fold", ratio=1)
    for r in results:
        measure = f"{r.score:.4f}" if hybrid else f"{r.distance:.4f}"
        key = ", ".join(f"{c}={v}" for c, v in r.key.items())
        chunk = r.chunk if len(r.chunk or "") <= 300 else r.chunk[:300] + "…"
        table.add_row(str(r.rank), measure, escape(key), escape(chunk or ""))
    console.print(table)


@app.command(epilog=EXIT_CODES)
def ask(
    question: Annotated[str, typer.Argument(help="the question to answer from the vectorizer's chunks")],
    vectorizer: VectorizerOption,
    model: Annotated[str, typer.Option("--model", "-m", help="the chat model to answer with")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="number of chunks to give the model")] = 5,
    filter: FilterOption = None,
    where: WhereOption = None,
    dsn: DsnOption = None,
    json_out: JsonOption = False,
) -> None:
    """Answer a question from a vectorizer's chunks with a chat model (ai.rag): answer, then sources."""
    conditions = _parse_filter(filter)
    with _client(dsn) as client:
        answer = client.rag(vectorizer, question, model, k, filter=conditions, where_clause=where)
    if json_out:
        _print_json(answer)
        return
    console.print(answer.answer, markup=False, highlight=False)
    console.print()
    for s in answer.sources:
        key = ", ".join(f"{c}={v}" for c, v in (s.get("key") or {}).items())
        console.print(f"[dim][{s.get('n')}] {escape(key)} (distance {s.get('distance', 0):.4f})[/]")


# -- vectorizers: list, show, create from JSON, drop -------------------------------------------

@vectorizers_app.callback()
def vectorizers_default(ctx: typer.Context, dsn: DsnOption = None, json_out: JsonOption = False) -> None:
    """List, show, create (from JSON) and drop vectorizers; without a command: list them."""
    if ctx.invoked_subcommand is None:
        vectorizers_list(dsn=dsn, json_out=json_out)


@vectorizers_app.command("list")
def vectorizers_list(dsn: DsnOption = None, json_out: JsonOption = False) -> None:
    """List the vectorizers: source, view, model, chunking, schedule."""
    with _client(dsn) as client:
        found = client.vectorizers()
    if json_out:
        _print_json(found)
        return
    table = Table(header_style="bold")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("vectorizer", overflow="fold")
    table.add_column("embedding", overflow="fold")
    table.add_column("chunking", overflow="fold")
    table.add_column("scheduling", no_wrap=True)
    for v in found:
        c = v.config
        emb, chunking = c.get("embedding", {}), c.get("chunking", {})
        size = f" {chunking['chunk_size']}/{chunking.get('chunk_overlap', 0)}" if "chunk_size" in chunking else ""
        table.add_row(str(v.id),
                      f"[bold]{escape(v.name)}[/]\n[dim]"
                      f"{escape(f'{v.source_schema}.{v.source_table} → {v.view_schema}.{v.view_name}')}[/]",
                      escape(f"{emb.get('implementation')}:{emb.get('model')} ({emb.get('dimensions')})"),
                      f"{chunking.get('implementation')}{size}", str(c.get("scheduling", {}).get("implementation")))
    console.print(table if found else "no vectorizers")


@vectorizers_app.command("show")
def vectorizers_show(
    name: Annotated[str, typer.Argument(help="the vectorizer")],
    dsn: DsnOption = None,
    alembic: Annotated[bool, typer.Option(
        "--alembic", help="print an op.create_vectorizer(...) call for a migration instead")] = False,
) -> None:
    """Print a vectorizer's definition as JSON, which `pgweave vectorizers create` accepts."""
    with _client(dsn) as client:
        definition = client.vectorizer(name).definition()
    if alembic:
        from .alembic import render_create_vectorizer

        print(render_create_vectorizer(definition))
    else:
        _print_json(definition)


@vectorizers_app.command("create")
def vectorizers_create(
    spec: Annotated[str, typer.Argument(
        metavar="SPEC", help="JSON file (or - for stdin): the arguments of ai.create_vectorizer, "
        "with \"source\"; configurations as JSON objects, as `pgweave vectorizers show` prints")],
    dsn: DsnOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create a vectorizer from a JSON definition.

    e.g. {"source": "blog", "loading": {"implementation": "column", "column_name": "contents"},
    "embedding": {"implementation": "ollama", "model": "all-minilm", "dimensions": 384}}
    """
    import inspect

    from .client import Client

    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text()
        arguments = json.loads(text)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the definition {spec}: {exc}", EXIT_USAGE)
    allowed = set(inspect.signature(Client.create_vectorizer).parameters) - {"self"}
    if not isinstance(arguments, dict) or "source" not in arguments:
        _fail('the definition must be a JSON object with "source", e.g. {"source": "blog", ...}', EXIT_USAGE)
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        _fail(f"unknown argument(s) {', '.join(unknown)}; ai.create_vectorizer takes "
              f"{', '.join(sorted(allowed))}", EXIT_USAGE)
    with _client(dsn) as client:
        vid = client.create_vectorizer(**arguments)
        created = client.status(next(v.name for v in client.vectorizers() if v.id == vid))
    if json_out:
        _print_json(created)
    else:
        console.print(f"[green]created vectorizer {created.name}[/] (id {vid}): "
                      f"{_count(created.pending_items)} row(s) queued", highlight=False)


@vectorizers_app.command("drop")
def vectorizers_drop(
    name: Annotated[str, typer.Argument(help="the vectorizer")],
    dsn: DsnOption = None,
    drop_all: Annotated[bool, typer.Option(
        "--drop-all", help="also drop its store table and view (the embeddings); default: keep them")] = False,
) -> None:
    """Drop a vectorizer: its triggers, queues and job; with --drop-all also its data."""
    with _client(dsn) as client:
        client.drop_vectorizer(name, drop_all=drop_all)
    console.print(f"dropped vectorizer {name}" + ("" if drop_all else " (its store table and view are kept)"),
                  highlight=False)


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
