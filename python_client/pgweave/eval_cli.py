"""`pgweave eval`: load labelled queries, run, show and compare evaluations, gate CI on them.

Exit codes: 0 ok (and every gate passed); 1 a gate failed (--min-ndcg, --max-drop) or the
database refused; 2 usage errors: no connection, an unknown vectorizer, table or run, a file
that cannot be read. Every table fits in 80 columns.
"""

from __future__ import annotations

import json
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import psycopg
import typer

from . import evaluation as ev

EXIT_GATE, EXIT_USAGE = 1, 2
WIDTH = 80

eval_app = typer.Typer(help="Measure retrieval and RAG quality on labelled queries; gate CI on it.",
                       no_args_is_help=True, epilog="Exit codes: 0 ok; 1 a gate failed or the database "
                       "refused; 2 usage, connection, unknown vectorizer, table or run.")

DsnOption = Annotated[Optional[str], typer.Option(
    "--dsn", help="libpq DSN; default: $PGWEAVE_DSN, then $DATABASE_URL, then libpq defaults")]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON only")]


def _fail(message: str, code: int) -> None:
    """The message on stderr, then exit with code."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _connected(dsn: str | None) -> Iterator[psycopg.Connection]:
    """An autocommit connection; database errors become a message and an exit code."""
    from .client import resolve_dsn

    try:
        conn = psycopg.connect(resolve_dsn(dsn), autocommit=True)
    except psycopg.OperationalError as exc:
        _fail(f"cannot connect: {str(exc).strip()}", EXIT_USAGE)
    try:
        with conn:
            yield conn
    except psycopg.Error as exc:
        diag = exc.diag
        text = diag.message_primary or str(exc).strip()
        if diag.message_hint:
            text += f"\nhint: {diag.message_hint}"
        usage = (diag.sqlstate or "").startswith(("42", "22", "3F"))
        _fail(text, EXIT_USAGE if usage else EXIT_GATE)
    except (LookupError, ev.LoadError, OSError) as exc:
        _fail(str(exc).strip("'\""), EXIT_USAGE)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widths (the first left-aligned, the others right-aligned), the
    first column cut so that every line fits in 80 columns."""
    cells = [header] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    others = sum(widths[1:]) + 2 * (len(widths) - 1)
    widths[0] = max(8, min(widths[0], WIDTH - others))

    def line(row: list[str]) -> str:
        """One row, padded and cut to the widths."""
        first = row[0] if len(row[0]) <= widths[0] else row[0][:widths[0] - 1] + "…"
        return "  ".join([first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _num(value: float | None, digits: int = 4) -> str:
    """A number with the given digits, '-' for none."""
    return "-" if value is None else f"{value:.{digits}f}"


def _metric_rows(run: ev.Run) -> list[list[str]]:
    """A run's metrics as table rows, the headline ones first."""
    names = [f"{m}@{run.k}" for m in ("ndcg", "recall", "precision", "hit_rate", "mrr", "map")]
    names += [n for n in run.metrics if n not in names]
    return [[n, _num(run.metrics[n], 1 if n.startswith("latency") else 4)] for n in names if n in run.metrics]


def _print_run(run: ev.Run) -> None:
    """A run: what was measured, with which configuration, and its metrics."""
    search = run.config.get("search") or run.config.get("rag") or {}
    emb = (run.config.get("vectorizer") or {}).get("embedding") or {}
    head = (f"run {run.id}  {run.vectorizer}  {run.method}  k={run.k}  {run.queries} queries"
            + (f" ({run.skipped} without a relevant document)" if run.skipped else "")
            + (f"  [{run.label}]" if run.label else ""))
    typer.echo(textwrap.fill(head, WIDTH, subsequent_indent="  "))
    settings = f"model {emb.get('model')} ({emb.get('dimensions')} dims)  " + "  ".join(
        f"{k}={v}" for k, v in search.items() if k not in ("method", "k", "judge_prompt"))
    typer.echo(textwrap.fill(settings, WIDTH, subsequent_indent="  "))
    typer.echo(_table(["metric", "value"], _metric_rows(run)))


@eval_app.command("load")
def load(
    table: Annotated[str, typer.Argument(help="the query-set table to create or fill, e.g. my_queries")],
    trec_queries: Annotated[Optional[Path], typer.Option(help="TREC queries: query_id<TAB>text lines")] = None,
    trec_qrels: Annotated[Optional[Path], typer.Option(help="TREC qrels: query_id 0 doc_id grade")] = None,
    beir: Annotated[Optional[Path], typer.Option(help="a BEIR folder (queries.jsonl, qrels/<split>.tsv)")] = None,
    split: Annotated[str, typer.Option(help="the BEIR qrels split")] = "test",
    csv_file: Annotated[Optional[Path], typer.Option("--csv", help="CSV: query_id,query,doc_key[,grade]")] = None,
    replace: Annotated[bool, typer.Option(help="empty the table first")] = False,
    dsn: DsnOption = None,
) -> None:
    """Write labelled queries into a query-set table (query_id, query, relevant)."""
    sources = [s for s in (trec_qrels, beir, csv_file) if s is not None]
    if len(sources) != 1 or (trec_qrels is None) != (trec_queries is None):
        _fail("give one source: --trec-queries with --trec-qrels, --beir, or --csv", EXIT_USAGE)
    with _connected(dsn) as conn:
        if beir is not None:
            queries = ev.load_beir(beir, split)
        elif csv_file is not None:
            queries = ev.load_csv(csv_file)
        else:
            queries = ev.load_trec(trec_queries, trec_qrels)
        n = ev.write_query_set(conn, table, queries, replace=replace)
    typer.echo(f"{n} queries in {table}")


@eval_app.command("run")
def run(
    vectorizer: Annotated[str, typer.Argument(help="the vectorizer to score")],
    queries: Annotated[str, typer.Argument(help="the query-set table")],
    method: Annotated[str, typer.Option(help="semantic, hybrid or text")] = "semantic",
    k: Annotated[int, typer.Option("-k", help="results scored per query")] = 10,
    vector_weight: Annotated[float, typer.Option(help="hybrid: weight of the vector ranking")] = 1.0,
    text_weight: Annotated[float, typer.Option(help="hybrid: weight of the text ranking")] = 1.0,
    rrf_k: Annotated[int, typer.Option(help="hybrid: reciprocal rank fusion constant")] = 60,
    language: Annotated[str, typer.Option(help="text-search configuration")] = "english",
    label: Annotated[Optional[str], typer.Option(help="a name for the run")] = None,
    min_ndcg: Annotated[Optional[float], typer.Option(help="gate: fail below this nDCG@k")] = None,
    baseline: Annotated[Optional[int], typer.Option(help="gate: a run to compare with (--max-drop)")] = None,
    max_drop: Annotated[Optional[float], typer.Option(help="gate: fail when nDCG@k drops more than this "
                                                            "below --baseline")] = None,
    json_out: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """Score a vectorizer on a query set, record the run, and apply the CI gates."""
    if method not in ev.METHODS:
        _fail(f"--method must be one of {', '.join(ev.METHODS)}, got {method!r}", EXIT_USAGE)
    if (baseline is None) != (max_drop is None):
        _fail("--max-drop needs --baseline RUN_ID, and --baseline needs --max-drop", EXIT_USAGE)
    with _connected(dsn) as conn:
        base = ev.run(conn, baseline) if baseline is not None else None
        search = {"language": language}
        if method == "hybrid":
            search.update(vector_weight=vector_weight, text_weight=text_weight, rrf_k=rrf_k)
        current = ev.evaluate(conn, vectorizer, queries, method=method, k=k, label=label, **search)
    problems = ev.gate(current, min_ndcg, base, max_drop)
    if json_out:
        typer.echo(json.dumps({"run_id": current.id, "metrics": current.metrics, "gate_failures": problems}))
    else:
        _print_run(current)
        if base is not None:
            typer.echo(f"baseline run {base.id}: nDCG@{base.k} {_num(base.ndcg)}")
    for problem in problems:
        typer.echo(f"gate failed: {problem}", err=True)
    if problems:
        raise typer.Exit(EXIT_GATE)


@eval_app.command("show")
def show(
    run_id: Annotated[Optional[int], typer.Argument(help="a run; without it, the recent runs")] = None,
    limit: Annotated[int, typer.Option(help="how many recent runs")] = 20,
    json_out: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """One run's metrics and configuration, or the list of recent runs."""
    with _connected(dsn) as conn:
        found = [ev.run(conn, run_id)] if run_id is not None else ev.runs(conn, limit)
    if json_out:
        typer.echo(json.dumps([r.__dict__ for r in found], default=str))
    elif run_id is not None:
        _print_run(found[0])
    else:
        typer.echo(_table(["vectorizer", "run", "method", "k", "queries", "nDCG", "label"],
                          [[r.vectorizer, str(r.id), r.method, str(r.k), str(r.queries), _num(r.ndcg),
                            (r.label or "")[:20]] for r in found]))


@eval_app.command("compare")
def compare(
    run_a: Annotated[int, typer.Argument(help="the baseline run (A)")],
    run_b: Annotated[int, typer.Argument(help="the run compared with it (B)")],
    metric: Annotated[Optional[str], typer.Option(help="the metric of the changed queries (default nDCG@k)")] = None,
    changes: Annotated[int, typer.Option(help="how many changed queries to list")] = 10,
    resamples: Annotated[int, typer.Option(help="bootstrap and permutation resamples")] = 1000,
    json_out: JsonOption = False,
    dsn: DsnOption = None,
) -> None:
    """B - A per metric with a paired 95% bootstrap interval and permutation p-value, and the
    queries that got better and worse."""
    with _connected(dsn) as conn:
        rows = ev.compare(conn, run_a, run_b, resamples)
        changed = ev.changes(conn, run_a, run_b, metric)
    if json_out:
        typer.echo(json.dumps({"metrics": rows, "changes": [list(c) for c in changed]}, default=str))
        return
    typer.echo(f"B = run {run_b} against A = run {run_a}, over {rows[0]['queries'] if rows else 0} common queries")
    typer.echo(_table(["metric", "A", "B", "B-A", "95% CI", "p", "+/-"],
                      [[r["metric"], _num(r["run_a_value"], 3), _num(r["run_b_value"], 3), _num(r["difference"], 3),
                        "" if r["ci_low"] is None else f"{r['ci_low']:+.3f}..{r['ci_high']:+.3f}",
                        _num(r["p_value"], 3), "" if r["better"] is None else f"{r['better']}/{r['worse']}"]
                       for r in rows]))
    better = [c for c in changed if c[4] is not None and c[4] > 0][:changes]
    worse = [c for c in changed if c[4] is not None and c[4] < 0][:changes]
    for title, items in (("better in B", better), ("worse in B", worse)):
        if items:
            typer.echo(f"\n{title}:")
            typer.echo(_table(["query", "A", "B"], [[c[1], _num(c[2], 3), _num(c[3], 3)] for c in items]))
