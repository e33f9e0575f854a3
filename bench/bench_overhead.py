"""The engine's own cost: backfills against a SYNTHETIC embedding server that answers instantly.

With a real model on this CPU every system waits for the model; a GPU server or a fast remote
API is the other regime, where the data path is the limit. This benchmark serves deterministic
hash vectors from bench/synthetic_server.py (not a model: every table says "synthetic") and
drains the same queue, side by side in one run, with:

  CALL ai.execute_vectorizer; the background scheduler with 1, 2, 4 backends (what pg_cron
  runs: CALL ai._scheduler(slot), processing_default(concurrency => n)); `pgweave worker
  --once` at --concurrency 1, 2, 4 and as 2 and 4 processes; pgai 0.12.1's worker at
  --concurrency 1, 2, 4.

Per path: chunks/s, the ratio to pgai's best and to the synthetic server's raw rate (one
client sending pgweave's requests back to back, reading the bytes), CPU ms per 1,000 chunks
of all PostgreSQL processes, of the worker process (CLI rows) and of the synthetic server.
Every run is checked: queue empty, nothing parked, every chunk stored once, every item
processed once (the progress counters), and the server embedded no chunk twice.

    .venv/bin/python bench/bench_overhead.py [--rows 0] [--rounds 1] [--no-pgai] [--only CALL,worker]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import CHUNK_OVERLAP, CHUNK_SIZE, TEMPLATE, formatted_chunks, say, table  # noqa: E402

from pgweave.corpus import postgres_docs  # noqa: E402
from pgweave.install import install  # noqa: E402
from pgweave.localdb import LocalCluster  # noqa: E402

PGAI_VENV = Path(os.environ.get("PGAI_VENV", ROOT / ".pgai-venv"))
PGWEAVE_CLI = str(Path(sys.executable).with_name("pgweave"))
BATCH_ROWS, REQUEST = 50, 64
TABLE = "CREATE TABLE docs (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL)"
TICK = os.sysconf("SC_CLK_TCK")


# -- the synthetic server and CPU accounting ---------------------------------------------------

@contextlib.contextmanager
def synthetic_server(log: Path, latency_ms: float = 0) -> Iterator[tuple[str, int]]:
    """Start bench/synthetic_server.py (each answer ``latency_ms`` late); yield (URL, pid)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "python_client"),
                                                                     os.environ.get("PYTHONPATH")]))}
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, str(HERE / "synthetic_server.py"), "--latency-ms", str(latency_ms)],
                                stdout=subprocess.PIPE,
                                stderr=err, text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise SystemExit(f"the synthetic server did not start; {log}:\n{log.read_text()[-2000:]}")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def cluster_with_pgweave(database: str) -> Iterator[tuple[LocalCluster, str]]:
    """A throwaway cluster (as bench/common.stack, without a model server) with pgweave
    installed in a new database; yields (cluster, the database's DSN)."""
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pgweave-bench-")))
    cluster.start()
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {database}")
        install(cluster.dsn(database))
        yield cluster, cluster.dsn(database)
    finally:
        cluster.destroy()


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (and of its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / TICK


def postgres_cpu(cluster: LocalCluster) -> float:
    """CPU seconds of every PostgreSQL process of the cluster so far (ended backends included)."""
    postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    total = _proc_cpu(postmaster, children=True)
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _proc_cpu(int(child))
    return total


def children_cpu() -> float:
    """CPU seconds of this process's ended children (the CLIs run to completion)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def raw_rate(url: str, requests: list[list[str]]) -> float:
    """Texts/s the synthetic server answers to one client sending these requests back to back
    (the bytes read, not decoded: the server's rate, not the client's)."""
    with httpx.Client(timeout=600) as client:
        start = time.perf_counter()
        for texts in requests:
            client.post(url + "/api/embed", json={"model": "synthetic", "input": texts}).raise_for_status()
        return sum(map(len, requests)) / (time.perf_counter() - start)


def server_texts(url: str) -> int:
    """Texts the synthetic server has embedded so far."""
    return httpx.get(url + "/stats").json()["texts"]


# -- the systems -------------------------------------------------------------------------------

def create_pgweave(conn: psycopg.Connection, url: str, background: int = 0) -> None:
    """The docs vectorizer against the synthetic server; ``background`` scheduler backends (0: none)."""
    scheduling = "ai.scheduling_cron()" if background else "ai.scheduling_none()"
    conn.execute(f"""SELECT ai.create_vectorizer('docs'::regclass, name => 'docs_embedding',
        loading => ai.loading_column('body'),
        embedding => ai.embedding_ollama('synthetic', 384, base_url => '{url}'),
        chunking => ai.chunking_recursive_character_text_splitter({CHUNK_SIZE}, {CHUNK_OVERLAP}),
        formatting => ai.formatting_python_template('{TEMPLATE}'), indexing => ai.indexing_none(),
        processing => ai.processing_default(batch_size => {BATCH_ROWS}, embedding_batch_size => {REQUEST},
                                            concurrency => {max(1, background)}),
        scheduling => {scheduling})""")


def create_pgai(conn: psycopg.Connection, url: str) -> None:
    """The same vectorizer in pgai 0.12.1."""
    conn.execute(f"""SELECT ai.create_vectorizer('docs'::regclass, name => 'docs_embedding',
        loading => ai.loading_column('body'),
        embedding => ai.embedding_ollama('synthetic', 384, base_url => '{url}'),
        chunking => ai.chunking_recursive_character_text_splitter({CHUNK_SIZE}, {CHUNK_OVERLAP}),
        formatting => ai.formatting_python_template('{TEMPLATE}'), indexing => ai.indexing_none(),
        processing => ai.processing_default(batch_size => {BATCH_ROWS}),
        destination => ai.destination_table('docs_embedding'), scheduling => ai.scheduling_none())""")


def reset(dsn: str, docs: list, create) -> None:
    """A fresh docs table holding ``docs`` and a vectorizer with every row queued."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM ai.vectorizer WHERE name = 'docs_embedding'").fetchone():
            conn.execute("SELECT ai.drop_vectorizer('docs_embedding', drop_all => true)")
        conn.execute("DROP TABLE IF EXISTS docs CASCADE")
        conn.execute(TABLE)
        with conn.cursor().copy("COPY docs (id, title, body) FROM STDIN") as copy:
            for i, page in enumerate(docs):
                copy.write_row((i, page.title, page.body))
        create(conn)
        conn.execute("CHECKPOINT")


def run_cli(args: list[str], log: Path) -> None:
    """Run a worker CLI to completion (its log on failure)."""
    with log.open("w") as out:
        proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "DD_TRACE_ENABLED": "false", "NO_COLOR": "1"})
    if proc.returncode:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}); {log}:\n{log.read_text()[-3000:]}")


def run_parallel(commands: list[list[str]], logs: Path, name: str) -> None:
    """Several worker processes at once, each to completion."""
    threads = [threading.Thread(target=run_cli, args=(c, logs / f"{name}-{i}.log")) for i, c in enumerate(commands)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_background(dsn: str, backends: int) -> None:
    """What pg_cron runs: CALL ai._scheduler(slot) in ``backends`` sessions, until the queue is
    empty; then the sessions are cancelled (between batches there is nothing to lose)."""
    pids: list[int] = []
    errors: list[BaseException] = []
    with psycopg.connect(dsn, autocommit=True) as conn:  # slots 1..backends share every vectorizer
        conn.execute("SELECT ai._record_scheduler(current_database(), '{}', %s, NULL)", (backends,))

    def slot(n: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            pids.append(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            try:
                conn.execute("CALL ai._scheduler(%s)", (n,))
            except psycopg.errors.QueryCanceled:
                pass
            except BaseException as exc:  # noqa: BLE001  reported below
                errors.append(exc)

    threads = [threading.Thread(target=slot, args=(n,)) for n in range(1, backends + 1)]
    for t in threads:
        t.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute("SELECT ai.vectorizer_queue_pending('docs_embedding', exact => true)").fetchone()[0]:
            if errors:
                raise SystemExit(f"a scheduler backend failed: {errors[0]}")
            time.sleep(0.02)
        conn.execute("SELECT pg_cancel_backend(p) FROM unnest(%s::int[]) p", (pids,))
    for t in threads:
        t.join()


def check_pgweave(dsn: str, rows: int, chunks: int, distinct_texts: int, embedded: int, name: str) -> str:
    """Nothing lost, nothing twice: the queue is empty, nothing parked, every chunk stored once,
    every item processed once, and the model asked once per chunk."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        stored, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (id, chunk_seq)) FROM docs_embedding_store").fetchone()
        pending = conn.execute("SELECT ai.vectorizer_queue_pending('docs_embedding', exact => true)").fetchone()[0]
        failed, items = conn.execute("""
            SELECT v.failed_relid::regclass::text, p.items_processed FROM ai.vectorizer v
            JOIN ai._vectorizer_progress p ON p.vectorizer_id = v.id WHERE v.name = 'docs_embedding'""").fetchone()
        parked = conn.execute(f"SELECT count(*) FROM {failed}").fetchone()[0]
    problems = [f"{what}: {got} (want {want})" for what, got, want in [
        ("chunks stored", stored, chunks), ("distinct (id, chunk_seq)", distinct, chunks),
        ("queue pending", pending, 0), ("parked items", parked, 0), ("items processed", items, rows)]
        if got != want]
    if not distinct_texts <= embedded <= chunks:  # identical chunks of one batch are embedded once
        problems.append(f"texts embedded by the server: {embedded} (want {distinct_texts}..{chunks})")
    if problems:
        raise SystemExit(f"{name}: lost or repeated work: " + "; ".join(problems))
    time.sleep(0.6)  # ended backends' statistics reach pg_stat
    with psycopg.connect(dsn, autocommit=True) as conn:
        seq, idx = conn.execute("SELECT seq_scan, idx_scan FROM pg_stat_user_tables "
                                "WHERE relid = 'docs_embedding_store'::regclass").fetchone()
    return f"ok; store scans seq {seq} / index {idx}"


def check_pgai(dsn: str, chunks: int, embedded: int, name: str) -> str:
    """pgai's run: its queue is empty and every chunk is stored once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM docs_embedding").fetchone()[0]
        pending = conn.execute("SELECT ai.vectorizer_queue_pending('docs_embedding', exact_count => true)").fetchone()[0]
    if stored != chunks or pending or embedded > chunks:
        raise SystemExit(f"{name}: stored {stored} of {chunks} chunks, {pending} pending, {embedded} embedded")
    return "ok"


# -- the run -----------------------------------------------------------------------------------

def main() -> None:
    """Run every path, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=0, help="documentation pages (0: the whole manual)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-pgai", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated words: run the paths whose label has one "
                                                  "('flight': the requests-in-flight table)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the in-flight table's server latency")
    parser.add_argument("--latency-rows", type=int, default=100, help="the in-flight table's documentation pages")
    args = parser.parse_args()

    docs = postgres_docs(limit=args.rows or None, prefix=None)
    texts = [t for d in docs for t in formatted_chunks(d.title, d.body)]
    n_chunks = len(texts)
    requests = [texts[i:i + REQUEST] for i in range(0, n_chunks, REQUEST)]
    logs = Path(tempfile.mkdtemp(prefix="pgweave-overhead-"))
    pgai_note = ""
    with cluster_with_pgweave("overhead") as (cluster, dsn):
        with synthetic_server(logs / "synthetic.log") as (url, server_pid):
            pgai_dsn = None
            if not args.no_pgai:
                pgai_dsn, pgai_note = setup_pgai(cluster, logs)

            paths: list[tuple[str, str, object]] = [("CALL ai.execute_vectorizer", "pgweave", "call")]
            paths += [(f"background scheduler, {n} backend{'s' * (n > 1)}", "pgweave", ("bg", n)) for n in (1, 2, 4)]
            paths += [(f"pgweave worker --concurrency {c}", "pgweave", ("worker", 1, c)) for c in (1, 2, 4)]
            paths += [(f"pgweave worker × {p} processes", "pgweave", ("worker", p, 1)) for p in (2, 4)]
            if pgai_dsn:
                paths += [(f"pgai 0.12.1 worker --concurrency {c}", "pgai", ("pgai", c)) for c in (1, 2, 4)]

            if args.only:
                paths = [p for p in paths if any(w in p[0] for w in args.only.split(","))]
            raw_rate(url, requests[:20])  # warm-up
            raws: list[float] = []
            results: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
            previous = None  # the label of the last run
            for r in range(args.rounds):
                for label, system, how in paths:
                    # The raw rate right before each run (this machine's speed drifts by half
                    # within minutes): a run's ratio is to the mean of the rates around it.
                    raws.append(raw_rate(url, requests))
                    if previous:
                        results[previous]["raw"].append((raws[-2] + raws[-1]) / 2)
                    say(f"round {r + 1}: {label} ({len(docs)} rows, {n_chunks} chunks)")
                    target = dsn if system == "pgweave" else pgai_dsn
                    background = how[1] if isinstance(how, tuple) and how[0] == "bg" else 0
                    reset(target, docs, (lambda c: create_pgweave(c, url, background)) if system == "pgweave"
                          else (lambda c: create_pgai(c, url)))
                    texts_before, pg_before = server_texts(url), postgres_cpu(cluster)
                    cli_before, srv_before = children_cpu(), _proc_cpu(server_pid)
                    start = time.perf_counter()
                    run_path(how, target, logs, label)
                    seconds = time.perf_counter() - start
                    embedded = server_texts(url) - texts_before
                    check = (check_pgweave(target, len(docs), n_chunks, len(set(texts)), embedded, label) if system == "pgweave"
                             else check_pgai(target, n_chunks, embedded, label))
                    res = results[label]
                    res["seconds"].append(seconds)
                    res["pg"].append(postgres_cpu(cluster) - pg_before)
                    res["cli"].append(children_cpu() - cli_before)
                    res["srv"].append(_proc_cpu(server_pid) - srv_before)
                    res["check"] = [check]
                    previous = label
                    say(f"  {seconds:.1f}s = {n_chunks / seconds:.0f} chunks/s, checked")
            raws.append(raw_rate(url, requests))
            if previous:
                results[previous]["raw"].append((raws[-2] + raws[-1]) / 2)
            print_tables(results, paths, raws, n_chunks, len(docs), args.rounds, pgai_note)
        if not args.only or "flight" in args.only:
            in_flight_table(dsn, docs[:args.latency_rows], args.latency_ms, args.rounds, logs)


def in_flight_table(dsn: str, docs: list, latency_ms: float, rounds: int, logs: Path) -> None:
    """CALL backfills against a SYNTHETIC server that answers each request ``latency_ms`` late (a
    remote API, a GPU server across a network), with 1, 2 and 4 embedding requests in flight."""
    texts = [t for d in docs for t in formatted_chunks(d.title, d.body)]
    n_chunks = len(texts)
    seconds: dict[int, list[float]] = collections.defaultdict(list)
    with synthetic_server(logs / "synthetic-latency.log", latency_ms) as (url, _):
        for r in range(rounds):
            for in_flight in (1, 2, 4):
                reset(dsn, docs, lambda c: create_pgweave(c, url))
                say(f"round {r + 1}: {latency_ms:g} ms latency, {in_flight} in flight ({n_chunks} chunks)")
                texts_before = server_texts(url)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"SET ai.embedding_requests_in_flight = {in_flight}")
                    start = time.perf_counter()
                    conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
                    seconds[in_flight].append(time.perf_counter() - start)
                check_pgweave(dsn, len(docs), n_chunks, len(set(texts)), server_texts(url) - texts_before,
                              f"{in_flight} in flight")
    base = n_chunks / statistics.median(seconds[1])
    rows = [[f"{n}" + (" (default)" if n == 2 else ""), f"{n_chunks / statistics.median(s):.0f}",
             f"{n_chunks / statistics.median(s) / base:.2f}x"] for n, s in seconds.items()]
    table(f"A model server {latency_ms:g} ms away (SYNTHETIC, each answer {latency_ms:g} ms late): "
          f"`CALL ai.execute_vectorizer`, {len(docs)} rows, {n_chunks} chunks, requests of {REQUEST}, "
          f"median of {rounds}", ["`ai.embedding_requests_in_flight`", "chunks/s", "vs 1"], rows,
          "One backend keeps that many embedding requests on their way while it reads the replies.")


def setup_pgai(cluster: LocalCluster, logs: Path) -> tuple[str | None, str]:
    """pgai 0.12.1 in its own database (bench/pgai_env.sh); (dsn, "") or (None, why not)."""
    if not (PGAI_VENV / "bin" / "pgai").exists():
        say(f"creating {PGAI_VENV} (bench/pgai_env.sh)")
        if subprocess.run(["bash", str(HERE / "pgai_env.sh"), str(PGAI_VENV)]).returncode:
            return None, "pgai 0.12.1 could not be installed (bench/pgai_env.sh failed): pgai rows missing."
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE pgai_overhead")
    dsn = cluster.dsn("pgai_overhead")
    run_cli([str(PGAI_VENV / "bin" / "pgai"), "install", "-d", dsn], logs / "pgai-install.log")
    return dsn, ""


def run_path(how, dsn: str, logs: Path, label: str) -> None:
    """Drain the queue one way."""
    name = label.replace(" ", "-").replace("/", "")
    if how == "call":
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
    elif how[0] == "bg":
        run_background(dsn, how[1])
    elif how[0] == "worker":
        _, processes, concurrency = how
        cmd = [PGWEAVE_CLI, "worker", "--dsn", dsn, "--vectorizer", "docs_embedding", "--once",
               "--concurrency", str(concurrency)]
        run_parallel([cmd] * processes, logs, name)
    else:
        run_cli([str(PGAI_VENV / "bin" / "pgai"), "vectorizer", "worker", "-d", dsn, "--once",
                 "--concurrency", str(how[1]), "--log-level", "WARN"], logs / f"{name}.log")


def print_tables(results: dict, paths: list, raws: list[float], n_chunks: int, n_rows: int,
                 rounds: int, pgai_note: str) -> None:
    """The overhead table and the scale-out table."""
    def rate(label: str) -> float:
        return n_chunks / statistics.median(results[label]["seconds"])

    def per_k(label: str, key: str) -> str:
        return f"{statistics.median(results[label][key]) * 1e6 / n_chunks:.0f}"

    def vs_raw(label: str) -> str:
        # Each run against the raw rate measured around it; the median over rounds.
        return f"{statistics.median(n_chunks / s / raw for s, raw in zip(results[label]['seconds'], results[label]['raw'])):.2f}×"

    pgai = [rate(label) for label, system, _ in paths if system == "pgai"]
    best = max(pgai) if pgai else None
    rows = []
    for label, system, how in paths:
        r = rate(label)
        cli = per_k(label, "cli") if isinstance(how, tuple) and how[0] in ("worker", "pgai") else "-"
        rows.append([label, f"{statistics.median(results[label]['seconds']):.1f}", f"{r:.0f}",
                     f"{r / best:.2f}×" if best else "-", vs_raw(label), per_k(label, "pg"), cli,
                     per_k(label, "srv"), results[label]["check"][0]])
    table(f"Backfill against the SYNTHETIC embedding server (instant hash vectors, not a model): "
          f"{n_rows} PostgreSQL documentation pages, {n_chunks} chunks",
          ["path", "seconds", "chunks/s", "vs pgai best", "vs synthetic raw", "PostgreSQL CPU ms/1k chunks",
           "worker process CPU ms/1k", "synthetic server CPU ms/1k", "nothing lost or twice"], rows,
          f"Synthetic raw rate (one client, pgweave's {REQUEST}-text requests back to back, bytes read "
          f"not decoded), measured before each run and after the last: " + ", ".join(f"{x:.0f}" for x in raws)
          + " texts/s; a run's ratio is to the mean of the rates before and after it, the column the "
          f"median over rounds. Worker rows are wall-clock times of the CLI, start-up included. PostgreSQL CPU is "
          f"every process of the cluster (backends, ended ones included, and background processes). "
          f"Rounds: {rounds} (medians). {pgai_note}")
    firsts = {g: next((lb for lb, _, _ in paths if lb.startswith(g)), None)
              for g in ("background scheduler", "pgweave worker --concurrency")}
    scale = [[label, f"{rate(label):.0f}", f"{rate(label) / rate(first):.2f}×"]
             for group in (("background scheduler",), ("pgweave worker --concurrency", "pgweave worker ×"))
             for first in [firsts[group[0]]] if first
             for label, _, _ in paths if label.startswith(group)]
    table("Scale-out on one database (SYNTHETIC server): throughput against the number of backends",
          ["path", "chunks/s", "vs one backend"], scale,
          "Each run was checked: queue empty, nothing parked, every chunk stored exactly once, items "
          "processed = rows, and the synthetic server embedded no chunk twice (identical chunks of one "
          "batch are embedded once by pgweave).")


if __name__ == "__main__":
    main()
