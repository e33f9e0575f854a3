"""pgweave against pgai 0.12.1 and the raw model, side by side in one run, on real text.

Corpus: the SQL command reference of the PostgreSQL documentation (Debian's postgresql-doc-15),
one row per page; both systems chunk with a recursive character splitter (800/100), embed
'$title: $chunk' with all-minilm on the same `pgweave serve`, in their own database on the
same cluster (pgai's `ai` schema and ours share the name).

1. Backfill: rows/s and chunks/s of (a) the same chunks sent straight to /api/embed in each
   system's request shape, (b) pgweave's background job (pg_cron, resident) and
   CALL ai.execute_vectorizer, (c) `pgweave worker --once`, (d) `pgai vectorizer worker
   --once` at several concurrencies; each as a ratio to (a) and to pgai's best.
2. Re-sync cost after updating a non-embedded column of 20% of rows, then editing one
   paragraph in 20% of rows: queued items, /api/embed requests and texts embedded (from the
   model server's /metrics), seconds; pgweave against pgai.
3. Freshness: single-row inserts at a steady rate; insert-to-searchable latency with the
   background job, with `pgweave worker` and with pgai's worker at a 1 s poll interval.

    bash bench/pgai_env.sh        # once (run automatically when .pgai-venv is missing)
    .venv/bin/python bench/bench_vectorizer.py [--pages 40] [--fresh-seconds 60] [--rounds 1]
        [--pgweave-concurrency 1,2] [--pgai-concurrency 1,2,4] [--pgai-max-chunks 64]
        [--profile] [--no-pgai] [--skip backfill,resync,fresh] [--keep-logs]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import (CHUNK_OVERLAP, CHUNK_SIZE, TEMPLATE, database, formatted_chunks,  # noqa: E402
                    percentile, raw_seconds, say, stack, table)

from pgweave.corpus import postgres_docs  # noqa: E402
from pgweave.localdb import CRON_DATABASE  # noqa: E402

PGAI_VENV = Path(os.environ.get("PGAI_VENV", ROOT / ".pgai-venv"))
PGWEAVE_CLI = str(Path(sys.executable).with_name("pgweave"))
PGAI_DB = "pgai_bench"

BATCH_ROWS = 50       # queue items per batch, both systems (pgai's default; pgweave's default)
PGWEAVE_REQUEST = 64  # pgweave's embedding_batch_size; pgai sends a batch's chunks in one request
EDITED = " (Revised for the benchmark: this paragraph now says a little more than before.)"


# -- the corpus --------------------------------------------------------------------------------

@dataclass
class Doc:
    """One source row."""

    id: int
    slug: str
    title: str
    body: str


def chunk_texts(doc: Doc) -> list[str]:
    """The formatted chunks both systems embed for a row."""
    return formatted_chunks(doc.title, doc.body)


def edit_one_paragraph(body: str) -> str:
    """The body with one paragraph in its middle half (a long one) extended by a sentence."""
    paragraphs = body.split("\n\n")
    middle = range(len(paragraphs) // 4, max(len(paragraphs) // 4 + 1, 3 * len(paragraphs) // 4))
    i = max(middle, key=lambda j: (len(paragraphs[j]) if j < len(paragraphs) else -1, -j))
    paragraphs[i] = paragraphs[i].rstrip() + EDITED
    return "\n\n".join(paragraphs)


def fresh_texts(pages: list, count: int) -> list[tuple[str, str]]:
    """Single-chunk rows for the freshness test: one real paragraph each (title, body)."""
    out = []
    for page in pages:
        for para in page.body.split("\n\n"):
            if 200 <= len(para) <= 700:
                out.append((page.title, para))
                break
    if not out:
        raise SystemExit("no paragraph of 200-700 characters in the corpus")
    return [out[i % len(out)] for i in range(count)]


# -- the model server --------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def model_counters(url: str) -> tuple[float, float, float]:
    """(/api/embed requests, texts embedded, seconds serving /api/embed) so far, from the
    model server's /metrics."""
    requests = inputs = busy = 0.0
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == "pgweave_serve_requests_total" and 'endpoint="/api/embed"' in labels:
            requests += value
        elif name == "pgweave_serve_inputs_embedded_total":
            inputs += value
        elif name == "pgweave_serve_request_seconds_sum" and 'endpoint="/api/embed"' in labels:
            busy += value
    return requests, inputs, busy


def request_shapes(docs: list[Doc]) -> dict[str, list[list[str]]]:
    """The /api/embed requests each system sends for a backfill of ``docs``."""
    pgweave, pgai = [], []
    for start in range(0, len(docs), BATCH_ROWS):
        texts = [t for d in docs[start:start + BATCH_ROWS] for t in chunk_texts(d)]
        pgweave.extend(texts[i:i + PGWEAVE_REQUEST] for i in range(0, len(texts), PGWEAVE_REQUEST))
        pgai.append(texts)  # one request per batch (pgai's Ollama limit is 2048 chunks)
    return {"pgweave": pgweave, "pgai": pgai}


# -- the two systems ---------------------------------------------------------------------------

TABLE = """CREATE TABLE docs (id int PRIMARY KEY, slug text NOT NULL, title text NOT NULL,
                             body text NOT NULL, views int NOT NULL DEFAULT 0)"""


@dataclass
class System:
    """One vectorizer system in its own database: how to (re)create, drain and watch it."""

    label: str
    dsn: str
    create_sql: str
    pending_sql: str
    store: str = "docs_embedding_store"
    logs: Path = Path("/tmp")
    processes: list[subprocess.Popen] = field(default_factory=list)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)

    def reset(self, docs: list[Doc], scheduling: str = "ai.scheduling_none()") -> None:
        """A fresh docs table holding ``docs`` and a vectorizer with every row queued."""
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM ai.vectorizer WHERE name = 'docs_embedding'").fetchone():
                conn.execute("SELECT ai.drop_vectorizer('docs_embedding', drop_all => true)")
            conn.execute("DROP TABLE IF EXISTS docs CASCADE")
            conn.execute(TABLE)
            load(conn, docs)
            conn.execute(self.create_sql.format(scheduling=scheduling))

    def pending(self) -> int:
        with self.connect() as conn:
            return conn.execute(self.pending_sql).fetchone()[0]

    def stored(self) -> int:
        with self.connect() as conn:
            return conn.execute(f"SELECT count(*) FROM {self.store}").fetchone()[0]

    def run(self, args: list[str], name: str, env: dict[str, str] | None = None) -> float:
        """Run a CLI to completion; return its wall seconds."""
        log = self.logs / f"{name}.log"
        with log.open("w") as out:
            start = time.perf_counter()
            proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env={**_cli_env(), **(env or {})})
            seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args[:3])} failed ({proc.returncode}); "
                             f"{log}:\n{log.read_text()[-3000:]}")
        return seconds

    def spawn(self, args: list[str], name: str) -> subprocess.Popen:
        """Start a long-running CLI (a waiting worker)."""
        out = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_cli_env())
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()


def _cli_env() -> dict[str, str]:
    # No tracing, no telemetry, no colour codes in the logs.
    return {**os.environ, "DD_TRACE_ENABLED": "false", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


def load(conn: psycopg.Connection, docs: list[Doc]) -> None:
    with conn.cursor().copy("COPY docs (id, slug, title, body) FROM STDIN") as copy:
        for d in docs:
            copy.write_row((d.id, d.slug, d.title, d.body))


def pgweave_system(cluster, url: str, logs: Path) -> System:
    dsn = database(cluster, CRON_DATABASE, url)  # pg_cron runs jobs in this database only
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    create = f"""SELECT ai.create_vectorizer('docs'::regclass, name => 'docs_embedding',
        loading => ai.loading_column('body'), embedding => ai.embedding_ollama('all-minilm', 384),
        chunking => ai.chunking_recursive_character_text_splitter({CHUNK_SIZE}, {CHUNK_OVERLAP}),
        formatting => ai.formatting_python_template('{TEMPLATE}'), indexing => ai.indexing_none(),
        processing => ai.processing_default(batch_size => {BATCH_ROWS},
                                            embedding_batch_size => {PGWEAVE_REQUEST}),
        scheduling => {{scheduling}})"""
    return System("pgweave", dsn, create, "SELECT ai.vectorizer_queue_pending('docs_embedding', exact => true)",
                  logs=logs)


def pgai_system(cluster, url: str, logs: Path) -> System:
    if not (PGAI_VENV / "bin" / "pgai").exists():
        say(f"creating {PGAI_VENV} (bench/pgai_env.sh)")
        subprocess.run(["bash", str(HERE / "pgai_env.sh"), str(PGAI_VENV)], check=True)
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PGAI_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{PGAI_DB}"')
    dsn = cluster.dsn(PGAI_DB)
    system = System("pgai", dsn, "", "SELECT ai.vectorizer_queue_pending('docs_embedding', exact_count => true)",
                    logs=logs)
    system.run([str(PGAI_VENV / "bin" / "pgai"), "install", "-d", dsn], "pgai-install")
    system.create_sql = f"""SELECT ai.create_vectorizer('docs'::regclass, name => 'docs_embedding',
        loading => ai.loading_column('body'),
        embedding => ai.embedding_ollama('all-minilm', 384, base_url => '{url}'),
        chunking => ai.chunking_recursive_character_text_splitter({CHUNK_SIZE}, {CHUNK_OVERLAP}),
        formatting => ai.formatting_python_template('{TEMPLATE}'), indexing => ai.indexing_none(),
        processing => ai.processing_default(batch_size => {BATCH_ROWS}),
        destination => ai.destination_table('docs_embedding'), scheduling => {{scheduling}})"""
    return system


def pgweave_worker(system: System, concurrency: int, once: bool = True) -> list[str]:
    args = [PGWEAVE_CLI, "worker", "--dsn", system.dsn, "--vectorizer", "docs_embedding",
            "--concurrency", str(concurrency)]
    return args + (["--once"] if once else ["--poll-interval", "5"])


def pgai_worker(system: System, concurrency: int, once: bool = True, poll: int = 1) -> list[str]:
    args = [str(PGAI_VENV / "bin" / "pgai"), "vectorizer", "worker", "-d", system.dsn,
            "--concurrency", str(concurrency), "--log-level", "WARN"]
    return args + (["--once"] if once else ["--poll-interval", str(poll)])


# -- 1. backfill -------------------------------------------------------------------------------

@dataclass
class Backfill:
    """One timed drain of a full queue."""

    seconds: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # model server's /api/embed seconds / wall seconds
    chunks: int = 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def background_backfill(system: System, docs: list[Doc]) -> tuple[float, int]:
    """The pg_cron job, resident before the rows arrive: seconds from the COPY's commit until
    the queue is empty (pg_cron starts jobs on the minute, so the job is warmed up first)."""
    system.reset([], "ai.scheduling_cron()")
    with system.connect() as conn:
        conn.execute("INSERT INTO docs (id, slug, title, body) VALUES (-1, 'warm-up', 'Warm-up', 'warm-up row')")
        say("  waiting for pg_cron to start the resident job (on the next minute)")
        wait_until(lambda: conn.execute("SELECT EXISTS (SELECT 1 FROM docs_embedding_store WHERE id = -1)")
                   .fetchone()[0], 150, "the pg_cron job's first run", every=0.2)
        load(conn, docs)  # autocommit: every row and its queue item commit together here
        start = time.perf_counter()
        wait_until(lambda: conn.execute(system.pending_sql).fetchone()[0] == 0, 3600, "the background backfill")
        seconds = time.perf_counter() - start
    return seconds, system.stored() - 1


def call_backfill(system: System, docs: list[Doc], profile: Path | None = None) -> tuple[float, int]:
    """CALL ai.execute_vectorizer on a fresh connection (loads the code, then drains)."""
    system.reset(docs)
    spy = None
    with system.connect() as conn:
        if profile:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            conn.execute("SELECT ai._load_python()")  # the profile is of the drain, not the import
            spy_bin = Path(sys.executable).with_name("py-spy")
            if not spy_bin.exists():
                raise SystemExit(f"--profile needs py-spy: {Path(sys.executable).with_name('pip')} install py-spy")
            spy = subprocess.Popen([str(spy_bin), "record", "--pid", str(pid),
                                    "--rate", "200", "--idle", "--full-filenames", "--format", "raw", "--output", str(profile)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
        start = time.perf_counter()
        conn.execute("CALL ai.execute_vectorizer('docs_embedding')")
        seconds = time.perf_counter() - start
    if spy:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    return seconds, system.stored()


def worker_backfill(system: System, docs: list[Doc], args: list[str], name: str,
                    env: dict[str, str] | None = None) -> tuple[float, int]:
    system.reset(docs)
    seconds = system.run(args, name, env)
    if system.pending():
        raise SystemExit(f"{name}: the queue is not empty after the worker ({system.pending()} left)")
    return seconds, system.stored()


# -- 2. re-sync --------------------------------------------------------------------------------

@dataclass
class Resync:
    queued: int
    requests: int
    embedded: int
    seconds: float
    chunks_after: int


def resync(system: System, url: str, change: Callable[[psycopg.Connection], None], drain: list[str],
           name: str) -> Resync:
    """Apply a change, then drain it with a worker --once; count what the model server did."""
    with system.connect() as conn:
        change(conn)
    queued = system.pending()
    before = model_counters(url)
    seconds = system.run(drain, name)
    after = model_counters(url)
    return Resync(queued, round(after[0] - before[0]), round(after[1] - before[1]), seconds, system.stored())


def bump_views(ids: list[int]) -> Callable[[psycopg.Connection], None]:
    def change(conn: psycopg.Connection) -> None:
        conn.execute("UPDATE docs SET views = views + 1 WHERE id = ANY(%s)", (ids,))
    return change


def edit_paragraphs(edits: dict[int, str]) -> Callable[[psycopg.Connection], None]:
    def change(conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.cursor().executemany("UPDATE docs SET body = %s WHERE id = %s",
                                      [(body, i) for i, body in edits.items()])
    return change


# -- 3. freshness ------------------------------------------------------------------------------

def freshness(system: System, rows: list[tuple[str, str]], rate: float, timeout: float = 120.0) -> tuple[list[float], int]:
    """Insert ``rows`` one by one at ``rate`` per second; seconds from each insert's commit
    until its chunk is in the store, and how many never arrived within ``timeout``."""
    with system.connect() as conn:
        conn.execute("DELETE FROM docs WHERE id >= 100000 OR id = -1")
        conn.execute("INSERT INTO docs (id, slug, title, body) VALUES (-1, 'warm-up', 'Warm-up', 'warm-up row')")
        wait_until(lambda: conn.execute(f"SELECT EXISTS (SELECT 1 FROM {system.store} WHERE id = -1)")
                   .fetchone()[0], 150, f"{system.label}'s first pick-up", every=0.1)
    committed: dict[int, float] = {}
    lock = threading.Lock()
    done = threading.Event()

    def insert() -> None:
        with system.connect() as conn:
            start = time.perf_counter()
            for i, (title, body) in enumerate(rows):
                time.sleep(max(0.0, start + i / rate - time.perf_counter()))
                conn.execute("INSERT INTO docs (id, slug, title, body) VALUES (%s, %s, %s, %s)",
                             (100000 + i, f"fresh-{i}", title, body))
                with lock:
                    committed[100000 + i] = time.perf_counter()
        done.set()

    thread = threading.Thread(target=insert, daemon=True)
    thread.start()
    latencies: dict[int, float] = {}
    missed = 0
    with system.connect() as conn:
        while True:
            with lock:
                waiting = {k: v for k, v in committed.items() if k not in latencies}
            if done.is_set() and not waiting:
                break
            if waiting:
                seen = conn.execute(f"SELECT DISTINCT id FROM {system.store} WHERE id = ANY(%s)",
                                    (list(waiting),)).fetchall()
                now = time.perf_counter()
                for (key,) in seen:
                    latencies[key] = now - waiting[key]
                for key, at in waiting.items():
                    if key not in latencies and now - at > timeout:
                        latencies[key] = float("nan")
                        missed += 1
            time.sleep(0.02)
    thread.join()
    return [v for v in latencies.values() if v == v], missed


# -- the profile -------------------------------------------------------------------------------

def profile_summary(raw: Path, sources: dict[str, str], min_share: float = 0.005) -> list[list[str]]:
    """py-spy's collapsed stacks as a tree below engine.execute: share of wall time per call site."""
    tree: dict = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        at = next((i for i, f in enumerate(frames) if re.match(r"execute \(.*pgweave_db/engine\.py:", f)), None)
        if at is None:
            continue
        total += int(n)
        # Our frames, then the first library frame (the call into requests, json, plpy...) and
        # the innermost frame (what it was doing there).
        path = []
        for frame in frames[at + 1:]:
            path.append(frame)
            if "pgweave_db/" not in frame:
                break
        if frames[-1] != path[-1]:
            path.append("… " + frames[-1])
        node = tree
        for frame in path:
            entry = node.setdefault(frame, [0, {}])
            entry[0] += int(n)
            node = entry[1]
    rows: list[list[str]] = []

    def walk(node: dict, level: int) -> None:
        for frame, (n, children) in sorted(node.items(), key=lambda kv: -kv[1][0]):
            if n / max(total, 1) >= min_share:
                rows.append(["\u00a0\u00a0" * level + _frame(frame, sources), f"{100 * n / total:.1f}%"])
                walk(children, level + 1)

    walk(tree, 0)
    return rows


def _frame(frame: str, sources: dict[str, str]) -> str:
    """'name (file:line)', with the source line for the in-database code."""
    prefix, frame = ("… ", frame[2:]) if frame.startswith("… ") else ("", frame)
    match = re.match(r"(.*) \((.*):(\d+)\)$", frame)
    if not match:
        return prefix + frame
    name, path, line = match.groups()
    module = path[:-len(".py")].replace("/", ".").removesuffix(".__init__")
    if module in sources:
        text = sources[module].splitlines()[int(line) - 1].strip()
        return f"{prefix}{name} ({path}:{line}: `{text[:70]}`)"
    return f"{prefix}{name} ({Path(path).name}:{line})"


# -- output ------------------------------------------------------------------------------------

def ratio(x: float | None, y: float | None) -> str:
    return f"{x / y:.2f}×" if x and y else "-"


def ms(values: list[float], pct: float | None = None) -> str:
    if not values:
        return "-"
    return f"{(max(values) if pct is None else percentile(values, pct)) * 1000:.0f}"


# -- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=40, help="documentation pages (rows); 189 = all of sql-*")
    parser.add_argument("--prefix", default="sql-", help="page file-name prefix ('' = the whole manual)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the backfill comparison; medians are shown")
    parser.add_argument("--pgweave-concurrency", default="1,2")
    parser.add_argument("--pgai-concurrency", default="1,2,4")
    parser.add_argument("--fresh-seconds", type=float, default=60.0)
    parser.add_argument("--fresh-rate", type=float, default=1.0, help="inserted rows per second")
    parser.add_argument("--pgai-poll", type=int, default=1, help="pgai worker --poll-interval (seconds)")
    parser.add_argument("--pgai-max-chunks", type=int, default=PGWEAVE_REQUEST,
                        help="also run pgai with its Ollama request size capped at this (0: don't)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one CALL backfill with py-spy (pip install py-spy; needs root)")
    parser.add_argument("--no-pgai", action="store_true", help="pgweave and the raw model only")
    parser.add_argument("--keep-logs", action="store_true", help="keep the CLIs' logs (kept anyway on --profile)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: backfill,resync,fresh")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    pw_conc = [int(c) for c in args.pgweave_concurrency.split(",") if c]
    ai_conc = [] if args.no_pgai else [int(c) for c in args.pgai_concurrency.split(",") if c]

    say(f"parsing {args.pages} documentation pages")
    pages = postgres_docs(None, args.prefix or None)
    docs = [Doc(i, p.slug, p.title, p.body) for i, p in enumerate(pages[:args.pages])]
    n_chunks = sum(len(chunk_texts(d)) for d in docs)
    shapes = request_shapes(docs)
    edit_ids = [d.id for d in docs if d.id % 5 == 0]
    edits = {i: edit_one_paragraph(docs[i].body) for i in edit_ids}
    changed_chunks = sum(len(set(chunk_texts(Doc(i, "", docs[i].title, body))) - set(chunk_texts(docs[i])))
                         for i, body in edits.items())
    fresh = fresh_texts(pages, max(1, int(args.fresh_seconds * args.fresh_rate)))

    with stack() as (cluster, url):
        logs = cluster.root.parent / f"{cluster.root.name}-logs"
        logs.mkdir(exist_ok=True)
        say(f"cluster {cluster.dsn()}, model server {url}, logs in {logs}")
        pgweave = pgweave_system(cluster, url, logs)
        pgai = None if args.no_pgai else pgai_system(cluster, url, logs)
        systems = [s for s in (pgweave, pgai) if s]
        try:
            raw_seconds(url, shapes["pgweave"][:4])  # load the model before timing anything
            results: dict[str, Backfill] = collections.defaultdict(Backfill)

            def timed(key: str, run: Callable[[], tuple[float, int]]) -> None:
                say(f"backfill: {key}")
                before = model_counters(url)[2]
                seconds, chunks = run()
                busy = (model_counters(url)[2] - before) / seconds
                results[key].seconds.append(seconds)
                results[key].busy.append(busy)
                results[key].chunks = chunks
                say(f"  {seconds:.1f}s, {chunks} chunks, {chunks / seconds:.1f} chunks/s, model busy {busy:.0%}")

            if "backfill" not in skip:
                for r in range(args.rounds):
                    say(f"backfill round {r + 1}/{args.rounds}: {len(docs)} rows, {n_chunks} chunks")
                    timed("raw64", lambda: (raw_seconds(url, shapes["pgweave"]), n_chunks))
                    timed("background", lambda: background_backfill(pgweave, docs))
                    for i in range(max(len(pw_conc), len(ai_conc))):  # interleaved: drift hits both
                        for c in pw_conc[i:i + 1]:
                            timed(f"pgweave{c}", lambda c=c: worker_backfill(
                                pgweave, docs, pgweave_worker(pgweave, c), f"pgweave-worker-c{c}"))
                        for c in ai_conc[i:i + 1]:
                            timed(f"pgai{c}", lambda c=c: worker_backfill(
                                pgai, docs, pgai_worker(pgai, c), f"pgai-worker-c{c}"))
                        if i == 0 and pgai and args.pgai_max_chunks:  # pgai in pgweave's request shape
                            timed("pgai1shaped", lambda: worker_backfill(
                                pgai, docs, pgai_worker(pgai, 1), "pgai-worker-c1-shaped",
                                {"PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH": str(args.pgai_max_chunks)}))
                    timed("call", lambda: call_backfill(pgweave, docs))
                    if pgai:
                        timed("rawpgai", lambda: (raw_seconds(url, shapes["pgai"]), n_chunks))
                    timed("raw64", lambda: (raw_seconds(url, shapes["pgweave"]), n_chunks))
                say("empty-queue runs (process start-up and one look at the queue)")
                startup = {"pgweave": pgweave.run(pgweave_worker(pgweave, 1), "pgweave-empty")}
                if pgai:
                    startup["pgai"] = pgai.run(pgai_worker(pgai, 1), "pgai-empty")
                print_backfill(results, docs, n_chunks, shapes, startup, pw_conc, ai_conc, args)

            if "resync" not in skip:
                resync_rows = []
                for system, drain in [(pgweave, pgweave_worker(pgweave, 1)),
                                      (pgai, pgai_worker(pgai, 1) if pgai else None)]:
                    if system is None:
                        continue
                    if "backfill" in skip:  # else the backfills above left every row embedded
                        say(f"re-sync: {system.label} (backfill first)")
                        worker_backfill(system, docs, drain, f"{system.label}-resync-backfill")
                    say(f"re-sync: {system.label}")
                    views = resync(system, url, bump_views(edit_ids), drain, f"{system.label}-resync-views")
                    para = resync(system, url, edit_paragraphs(edits), drain, f"{system.label}-resync-edit")
                    resync_rows.append((system.label, views, para))
                print_resync(resync_rows, len(edit_ids), len(docs), changed_chunks, n_chunks)

            if "fresh" not in skip:
                fresh_rows = []
                say(f"freshness: pgweave background job ({len(fresh)} rows at {args.fresh_rate}/s)")
                pgweave.reset([], "ai.scheduling_cron()")
                fresh_rows.append(["pgweave, background scheduler (pg_cron, poll 0.25 s)", *freshness(pgweave, fresh, args.fresh_rate)])
                say("freshness: pgweave worker (LISTEN/NOTIFY)")
                pgweave.reset([])
                pgweave.spawn(pgweave_worker(pgweave, 1, once=False), "pgweave-worker-fresh")
                fresh_rows.append(["pgweave worker (LISTEN/NOTIFY)", *freshness(pgweave, fresh, args.fresh_rate)])
                pgweave.stop_all()
                if pgai:
                    say(f"freshness: pgai worker --poll-interval {args.pgai_poll}")
                    pgai.reset([])
                    pgai.spawn(pgai_worker(pgai, 1, once=False, poll=args.pgai_poll), "pgai-worker-fresh")
                    fresh_rows.append([f"pgai vectorizer worker --poll-interval {args.pgai_poll}",
                                       *freshness(pgai, fresh, args.fresh_rate)])
                    pgai.stop_all()
                table(f"Freshness: one row inserted every {1 / args.fresh_rate:g} s for "
                         f"{args.fresh_seconds:g} s, commit until its chunk is stored",
                         ["processing", "rows", "p50 ms", "p95 ms", "max ms", "missed (>120 s)"],
                         [[label, len(lat) + missed, ms(lat, 50), ms(lat, 95), ms(lat), missed]
                          for label, lat, missed in fresh_rows])

            if args.profile:
                raw = logs / "engine-profile.txt"
                say(f"profile: CALL ai.execute_vectorizer under py-spy (raw stacks in {raw})")
                seconds, chunks = call_backfill(pgweave, docs, profile=raw)
                with pgweave.connect() as conn:  # the code as installed, for the line numbers
                    sources = dict(conn.execute("SELECT name, source FROM ai._python_module").fetchall())
                table(f"Where a backfill's time goes in the backend (py-spy, wall-clock samples incl. "
                         f"waiting; {chunks} chunks in {seconds:.1f} s)",
                         ["call site (below engine.execute)", "share"], profile_summary(raw, sources))
        finally:
            for s in systems:
                s.stop_all()
    if not (args.keep_logs or args.profile):
        shutil.rmtree(logs, ignore_errors=True)


def print_backfill(results: dict, docs: list[Doc], n_chunks: int, shapes: dict, startup: dict,
                   pw_conc: list[int], ai_conc: list[int], args: argparse.Namespace) -> None:
    def rate(key: str) -> float | None:
        return n_chunks / statistics.median(results[key].seconds) if key in results else None

    raw = rate("raw64")
    best_pgai = max((rate(k) for k in [f"pgai{c}" for c in ai_conc] + ["pgai1shaped"] if k in results),
                    default=None)
    lines = [("(a) raw /api/embed, pgweave's requests (≤64 chunks)", "raw64"),
             ("(a') raw /api/embed, pgai's requests (one per 50 rows)", "rawpgai"),
             ("(b) pgweave, background scheduler (pg_cron)", "background"),
             ("(b') pgweave, CALL ai.execute_vectorizer", "call")]
    lines += [(f"(c) pgweave worker --once --concurrency {c}", f"pgweave{c}") for c in pw_conc]
    lines += [(f"(d) pgai vectorizer worker --once --concurrency {c}", f"pgai{c}") for c in ai_conc]
    lines += [(f"(d') pgai, --concurrency 1, PGAI_VECTORIZER_OLLAMA_MAX_CHUNKS_PER_BATCH={args.pgai_max_chunks}"
               " (pgweave's request shape)", "pgai1shaped")]
    rows = []
    for label, key in lines:
        if key not in results:
            continue
        chunks_s = rate(key)
        mismatch = "" if key.startswith("raw") or results[key].chunks == n_chunks else f" ⚠ {results[key].chunks} stored"
        rows.append([label + mismatch, f"{statistics.median(results[key].seconds):.1f}",
                     f"{len(docs) * chunks_s / n_chunks:.2f}", f"{chunks_s:.1f}", ratio(chunks_s, raw),
                     ratio(chunks_s, best_pgai), f"{statistics.median(results[key].busy):.0%}"])
    raws = ", ".join(f"{n_chunks / s:.1f}" for s in results["raw64"].seconds)
    note = (f"Raw (a) was measured before and after the systems (chunks/s: {raws}); the median is the "
            f"reference. Worker rows are wall-clock times of the CLI, start-up included; an empty-queue run "
            f"takes " + ", ".join(f"{k} {v:.1f} s" for k, v in startup.items()) + ". "
            f"{len(shapes['pgweave'])} requests in pgweave's shape, {len(shapes['pgai'])} in pgai's. "
            f"Model busy: the model server's time in /api/embed over the wall time (load-independent "
            f"overhead; over 100% means requests queued at the server). Rounds: {args.rounds} (medians).")
    table(f"Backfill: {len(docs)} PostgreSQL documentation pages, {n_chunks} chunks "
             f"(recursive splitter {CHUNK_SIZE}/{CHUNK_OVERLAP}, '{TEMPLATE}', all-minilm, same model server)",
             ["path", "seconds", "rows/s", "chunks/s", "vs raw (a)", "vs pgai best", "model busy"], rows, note)


def print_resync(rows: list, n_rows: int, n_docs: int, changed_chunks: int, n_chunks: int) -> None:
    by = {label: (views, para) for label, views, para in rows}
    out = []
    for i, change in enumerate([f"(i) UPDATE views (not embedded) on {n_rows} of {n_docs} rows",
                                f"(ii) one paragraph edited in {n_rows} of {n_docs} rows"]):
        for label in by:
            r = by[label][i]
            other = by.get("pgai", (None, None))[i]
            out.append([change if label == rows[0][0] else "", label, r.queued, r.requests, r.embedded,
                        f"{r.seconds:.1f}", ratio(other.seconds, r.seconds) if other and label != "pgai" else "-",
                        r.chunks_after])
    table("Re-sync cost: model calls counted by the model server (/metrics), drained by each worker --once",
             ["change", "system", "queued items", "/api/embed requests", "texts embedded", "seconds",
              "pgai time / this", "chunks stored after"], out,
             f"A fresh chunking of the edited rows differs from the stored one in {changed_chunks} chunks "
             f"(of {n_chunks}); seconds include each CLI's start-up.")


if __name__ == "__main__":
    main()
