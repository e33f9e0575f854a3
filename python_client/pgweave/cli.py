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
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterator, Optional

import psycopg
import typer
from rich.markup import escape

from . import __version__, display, migrate_pgai
from .client import resolve_dsn  # the CLI's DSN order: --dsn, env, libpq
from .display import console, count, err_console, print_json

if TYPE_CHECKING:
    from .client import Client
    from .errors import PgweaveError
    from .results import VectorizerStatus

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
vectorizers_app = typer.Typer(help="List, show, create (from JSON), alter and drop vectorizers.",
                              invoke_without_command=True)
app.add_typer(vectorizers_app, name="vectorizers")
from .eval_cli import eval_app  # noqa: E402
app.add_typer(eval_app, name="eval")
from .serve.commands import models_app  # noqa: E402
app.add_typer(models_app, name="models")

DsnOption = Annotated[
    Optional[str],
    typer.Option("--dsn", help="libpq DSN; default: $PGWEAVE_DSN, then $DATABASE_URL, then libpq defaults"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON only (on stdout)")]


def _fail(message: str, code: int = 1) -> None:
    """Print an error message and exit with ``code``."""
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
    """Install or upgrade the `ai` schema (extensions, tables, functions, in-database Python).

    Needs a superuser the first time (the extensions vector and plpython3u); other roles then
    get access with SELECT ai.grant_ai_usage('role').
    """
    from .errors import PgweaveError
    from .install import arrange_background
    from .install import install as do_install

    target = dsn_arg or resolve_dsn(dsn)
    try:
        installed = do_install(target, revision, background=False)
        background = arrange_background(target) if revision == "head" else None
    except PgweaveError as exc:
        _fail_with(exc)
    console.print(f"[green]pgweave {installed} installed[/]")
    if background:
        console.print(background, highlight=False)


@app.command()
def uninstall(
    dsn_arg: Annotated[Optional[str], typer.Argument(metavar="DSN", help="database to remove pgweave from")] = None,
    dsn: DsnOption = None,
    drop_stores: Annotated[bool, typer.Option("--drop-stores", help="drop every store and view too")] = False,
) -> None:
    """Remove pgweave from a database: its pg_cron jobs (also in pg_cron's database), every
    vectorizer's triggers, functions and queues, the event triggers and schema `ai`.

    Stores and views are the user's data and stay, unless --drop-stores (after which
    DROP EXTENSION vector works). Needs a superuser.
    """
    from .errors import PgweaveError, from_psycopg
    from .install import uninstall as do_uninstall

    try:
        summary = do_uninstall(dsn_arg or resolve_dsn(dsn), drop_stores=drop_stores)
    except PgweaveError as exc:
        _fail_with(exc)
    except psycopg.Error as exc:
        _fail_with(from_psycopg(exc))
    console.print(summary, highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (Ollama's default is 11434)")] = 11434,
    model_dir: Annotated[Optional[list[str]], typer.Option(
        "--model-dir", help="extra sentence-transformers directory to serve, as PATH or NAME=PATH")] = None,
    generate_model_dir: Annotated[Optional[list[str]], typer.Option(
        "--generate-model-dir", help="transformers causal-LM directory to serve for /api/generate, "
        "/api/chat and /v1/chat/completions, as PATH or NAME=PATH")] = None,
    runtime: Annotated[Optional[str], typer.Option(
        help="embedding runtime: auto (bf16 where this CPU multiplies bfloat16 faster than "
             "float32, else fp32), fp32, bf16, or int8 (faster, changes the vectors); default "
             "$PGWEAVE_RUNTIME or auto")] = None,
    models_home: Annotated[Optional[str], typer.Option(
        help="folder of pulled models (default $PGWEAVE_MODELS or ~/.cache/pgweave/models)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the local Ollama-compatible model server (all-minilm offline; pulled models too)."""
    try:
        from .serve import run
    except ImportError as exc:
        _fail(f"the model server needs the serve extra ({exc.name} is missing): "
              "pip install torch==2.13.0 'pgweave[serve]'")
    run(host=host, port=port, model_dirs=model_dir or [], generate_dirs=generate_model_dir or [],
        log_level=log_level, runtime=runtime, models_home=models_home)


LOG_LEVELS = ("debug", "info", "warning", "error")


@app.command(epilog=EXIT_CODES)
def worker(
    dsn: DsnOption = None,
    vectorizer: Annotated[Optional[list[str]], typer.Option(
        "--vectorizer", "-v", help="vectorizer name to process (repeatable); default: all")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="parallel batches per vectorizer")] = 1,
    once: Annotated[bool, typer.Option("--once", help="drain the queues once, print what was done, exit")] = False,
    poll_interval: Annotated[float, typer.Option(help="seconds between polls when no NOTIFY arrives")] = 5.0,
    log_level: Annotated[str, typer.Option(
        help=f"least level logged: {', '.join(LOG_LEVELS)} (debug: every empty poll too)")] = "info",
    log_format: Annotated[str, typer.Option(
        help="logfmt (key=value, one event a line) or json (one object a line)")] = "logfmt",
) -> None:
    """Process vectorizer queues from outside Postgres (woken by LISTEN/NOTIFY).

    Logs to stderr, one event a line: start, the vectorizers served, each batch with its items
    and chunks, errors. Exits 2 when it cannot connect or a vectorizer is unknown, 1 when a
    batch failed during --once.
    """
    import signal
    import threading

    from .errors import PgweaveError
    from .worker import configure_logging, run_worker

    if log_level.lower() not in LOG_LEVELS or log_format not in ("logfmt", "json"):
        _fail(f"--log-level takes {', '.join(LOG_LEVELS)}; --log-format takes logfmt or json", EXIT_USAGE)
    configure_logging(log_level, log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stats = run_worker(resolve_dsn(dsn), vectorizer, concurrency, once, poll_interval, stop)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED)
    except PgweaveError as exc:
        _fail_with(exc)
    if once:
        console.print(f"{stats.items:,} item(s), {stats.chunks:,} chunk(s) embedded in {stats.batches:,} "
                      f"batch(es)", highlight=False)
    if stats.errors:
        _fail(f"{len(stats.errors)} batch(es) failed; last: {stats.errors[-1]}\n"
              "hint: `pgweave errors` lists them; failed items are retried with back-off")


# -- operating vectorizers -------------------------------------------------------------------

def _watch(fetch, interval: float, json_out: bool) -> None:
    """Redraw the statuses every ``interval`` s (JSON lines, or progress bars) until Ctrl-C."""
    start = time.monotonic()
    try:
        if json_out:
            while True:
                print_json(fetch(), indent=None)
                time.sleep(interval)
        with display.ProgressBoard(console) as board:
            while True:
                board.show_all(fetch(), time.monotonic() - start)
                time.sleep(interval)
    except KeyboardInterrupt:   # the normal way to stop watching
        pass


@app.command(epilog=EXIT_CODES)
def status(
    names: Annotated[Optional[list[str]], typer.Argument(
        metavar="NAME", help="vectorizers to show; one name: all its details")] = None,
    dsn: DsnOption = None,
    json_out: JsonOption = False,
    show_errors: Annotated[bool, typer.Option(
        "--errors", "-e", help="print each current error in full under the table")] = False,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="keep refreshing, with a progress bar per vectorizer (Ctrl-C stops)")] = False,
    interval: Annotated[float, typer.Option(min=0.05, help="seconds between refreshes with --watch")] = 1.0,
) -> None:
    """Show each vectorizer in one line: state, queue, parked items, chunks, who processes it.

    States: in sync, syncing, disabled, and the ones that exit 1: failing (no batch succeeded
    since the last error), parked (items gave up: `pgweave errors`, `pgweave retry NAME`),
    nobody (items wait and nothing processes the queue). With --watch --json, prints one JSON
    array per refresh.
    """
    with _client(dsn) as client:
        def fetch() -> list["VectorizerStatus"]:
            """The statuses to show, read now."""
            return [client.status(n) for n in names] if names else client.status()

        statuses = fetch()
        if watch:
            _watch(fetch, interval, json_out)
        elif json_out:
            print_json(statuses)
        elif len(names or []) == 1:
            latest = client.errors(statuses[0].name, limit=1) if statuses[0].last_error else []
            console.print(display.status_details(statuses[0], *latest))
        elif statuses:
            console.print(display.status_table(statuses))
            for line in display.status_errors(statuses) if show_errors else []:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            for line in display.status_footer(statuses):
                err_console.print(line, markup=False, highlight=False)
        else:
            console.print("no vectorizers: create one with ai.create_vectorizer(...) "
                          "or `pgweave vectorizers create`")
    if any(display.needs_attention(s) for s in statuses):
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
    """Wait until a vectorizer's queue is drained, with a progress bar over its whole backlog.

    Something must drain it meanwhile: the pg_cron job, `pgweave worker`, or
    CALL ai.execute_vectorizer; when the server reports that nothing does, it stops at once
    (exit 1). Exits 0 in sync, 1 in sync but with failed (parked) items, 3 when items are
    still pending at --timeout. --json prints the final status only.
    """
    from .errors import NotInSync, NotProcessed

    with _client(dsn) as client:
        try:
            if json_out:
                final = client.wait(name, timeout=timeout, poll_interval=interval)
            else:
                with display.ProgressBoard(console) as board:
                    final = client.wait(name, timeout=timeout, poll_interval=interval,
                                        on_progress=board.show)
        except (NotInSync, NotProcessed) as exc:
            if json_out:
                print_json(exc.status)
            label = "not in sync" if isinstance(exc, NotInSync) else "not processed"
            err_console.print(f"[bold yellow]{label}:[/] ", end="")
            err_console.print(str(exc), markup=False, highlight=False)
            raise typer.Exit(EXIT_NOT_IN_SYNC if isinstance(exc, NotInSync) else EXIT_PROBLEMS)
    if json_out:
        print_json(final)
    else:
        console.print(f"[green]{final.name} is in sync[/]: {count(final.stored_chunks)} chunk(s) stored, "
                      f"{count(final.failed_items)} failed item(s)", highlight=False)
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
    full: Annotated[bool, typer.Option("--full", "-f", help="every error's whole text and hint")] = False,
) -> None:
    """List recorded vectorizer errors, newest first, one line each (--full: whole texts). Exits 1 when any."""
    with _client(dsn) as client:
        found = client.errors(name, limit=limit)
    if json_out:
        print_json(found)
    elif found and full:
        for text in display.errors_full(found):
            console.print(text, markup=False, highlight=False, soft_wrap=True)
    elif found:
        console.print(display.errors_table(found))
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
        print_json(moved)
        return
    for n, moved_items in moved.items():
        console.print(f"{n}: {moved_items:,} item(s) back in the queue", highlight=False)


# -- search ------------------------------------------------------------------------------------

def _parse_filter(raw: str | None) -> dict | None:
    """The --filter JSON object (exit 2 with an example when it is not one)."""
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        _fail(f"--filter is not JSON: {exc}\nhint: e.g. --filter '{{\"lang\": \"en\"}}'", EXIT_USAGE)
    if not isinstance(parsed, dict):
        _fail("--filter must be a JSON object, e.g. '{\"lang\": [\"en\", \"de\"]}'", EXIT_USAGE)
    return parsed


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

    Prints one line per hit: rank, distance (or fused score), the source row's key and the
    chunk's start (--json: whole chunks and rows). No results is not an error (exit 0).
    """
    conditions = _parse_filter(filter)
    with _client(dsn) as client:
        if hybrid:
            results = client.hybrid_search(vectorizer, query, k, filter=conditions, where_clause=where)
        else:
            results = client.semantic_search(vectorizer, query, k, filter=conditions, where_clause=where)
    if json_out:
        print_json([display.hit_json(r) for r in results])
    elif results:
        console.print(display.search_table(results, hybrid))
    else:
        console.print("no results")


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
        print_json(answer)
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
    """List the vectorizers, one line each: source, model, chunking, scheduling."""
    with _client(dsn) as client:
        found = client.vectorizers()
    if json_out:
        print_json(found)
    else:
        console.print(display.vectorizers_table(found) if found else "no vectorizers")


@vectorizers_app.command("show")
def vectorizers_show(
    name: Annotated[str, typer.Argument(help="the vectorizer")],
    dsn: DsnOption = None,
    alembic: Annotated[bool, typer.Option(
        "--alembic", help="print an op.create_vectorizer(...) call for a migration instead, "
        "with only what differs from the defaults")] = False,
    scheduling: Annotated[bool, typer.Option(
        "--scheduling", help="with --alembic: keep its scheduling (left to each database otherwise)")] = False,
) -> None:
    """Print a vectorizer's definition as JSON, which `pgweave vectorizers create` accepts."""
    with _client(dsn) as client:
        definition = client.vectorizer(name).definition()
        if alembic:
            from .alembic import DEFAULTS_QUERY, minimal_definition, render_create_vectorizer

            cur = client.connection.execute(DEFAULTS_QUERY)
            defaults = dict(zip([c.name for c in cur.description], cur.fetchone()))
            definition = minimal_definition(definition, defaults, scheduling)
    if alembic:
        print(render_create_vectorizer(definition))
    else:
        print_json(definition)


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

    arguments = _read_spec(spec)
    allowed = set(inspect.signature(Client.create_vectorizer).parameters) - {"self"}
    if "source" not in arguments:
        _fail('the definition must be a JSON object with "source", e.g. {"source": "blog", ...}', EXIT_USAGE)
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        _fail(f"unknown argument(s) {', '.join(unknown)}; ai.create_vectorizer takes "
              f"{', '.join(sorted(allowed))}", EXIT_USAGE)
    with _client(dsn) as client:
        vid = client.create_vectorizer(**arguments)
        created = client.status(next(v.name for v in client.vectorizers() if v.id == vid))
    if json_out:
        print_json(created)
    else:
        console.print(f"[green]created vectorizer {created.name}[/] (id {vid}): "
                      f"{count(created.pending_items)} row(s) queued", highlight=False)


def _read_spec(spec: str) -> dict:
    """A JSON object from a file (or - for stdin), or exit with a usage error."""
    try:
        arguments = json.loads(sys.stdin.read() if spec == "-" else Path(spec).read_text())
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the definition {spec}: {exc}", EXIT_USAGE)
    if not isinstance(arguments, dict):
        _fail(f"{spec} must hold a JSON object", EXIT_USAGE)
    return arguments


@vectorizers_app.command("alter")
def vectorizers_alter(
    name: Annotated[str, typer.Argument(help="the vectorizer")],
    spec: Annotated[str, typer.Argument(
        metavar="SPEC", help="JSON file (or - for stdin): the arguments of ai.alter_vectorizer to change, "
        "e.g. {\"embedding\": {...}} or {\"processing\": {\"batch_size\": 20}}")],
    dsn: DsnOption = None,
) -> None:
    """Change a vectorizer. Processing, scheduling, indexing, grant_to and new_name change in place;
    loading, embedding, chunking and formatting build a new generation in the background, which
    takes over once it has caught up (search answers from the live one until then)."""
    allowed = {"loading", "embedding", "chunking", "formatting", "indexing", "scheduling", "processing",
               "grant_to", "new_name"}
    arguments = _read_spec(spec)
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        _fail(f"unknown argument(s) {', '.join(unknown)}; ai.alter_vectorizer takes {', '.join(sorted(allowed))}",
              EXIT_USAGE)
    with _client(dsn) as client:
        said = client.alter_vectorizer(name, **arguments)
    console.print(f"{name}: {said}", highlight=False)


@vectorizers_app.command("drop-store")
def vectorizers_drop_store(
    view: Annotated[str, typer.Argument(help="the view (or store) that `vectorizers drop` kept")],
    dsn: DsnOption = None,
) -> None:
    """Drop the view and store table a dropped vectorizer left (its embeddings are lost)."""
    with _client(dsn) as client:
        client.drop_vectorizer_store(view)
    console.print(f"dropped the kept view and store of {view}", highlight=False)


@vectorizers_app.command("drop")
def vectorizers_drop(
    name: Annotated[str, typer.Argument(help="the vectorizer")],
    dsn: DsnOption = None,
    drop_all: Annotated[bool, typer.Option(
        "--drop-all", help="also drop its store table and view (the embeddings); default: keep them")] = False,
) -> None:
    """Drop a vectorizer: its triggers, queues and job; with --drop-all also its data. A kept
    store is adopted by `vectorizers create` of the same definition; `vectorizers drop-store`
    drops it."""
    with _client(dsn) as client:
        client.drop_vectorizer(name, drop_all=drop_all)
    console.print(f"dropped vectorizer {name}" + ("" if drop_all else " (its store table and view are kept: "
                  "`vectorizers create` of the same definition adopts them, `vectorizers drop-store` drops them)"),
                  highlight=False)


app.command("migrate-from-pgai", epilog=EXIT_CODES)(migrate_pgai.command)


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
    """Run the command line."""
    app()


if __name__ == "__main__":
    main()
