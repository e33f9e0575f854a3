"""Freshness: how soon a committed row is searchable, with background processing only.

An application database that is not pg_cron's (pg_cron lives in its own database, as on most
servers), installed by `pgweave install`, which schedules the database's scheduler there. For
1, 10 and 50 vectorizers (one table each, owned by a role that is not a superuser), each
round commits one new row in every table at once and polls the stores until each row's
chunk is there: the seconds from commit to searchable, per row. Printed: p50 / p95 / max,
and the database backends the scheduler used (it should stay at its `backends` setting,
whatever the number of vectorizers). The model is the real all-minilm of `pgweave serve`.

    .venv/bin/python bench/bench_freshness.py [--counts 1,10,50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import percentile, say, stack, table  # noqa: E402

from pgweave.install import install  # noqa: E402

OWNER = "bench_owner"


def _prepare(cluster, model_url: str) -> tuple[str, str]:
    """pg_cron's database, an application database with pgweave and the owner role; DSNs."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
        conn.execute(f'CREATE DATABASE "{cron_db}"')
        conn.execute("CREATE DATABASE app")
        conn.execute(f"ALTER DATABASE app SET ai.ollama_host = '{model_url}'")
        conn.execute(f"CREATE ROLE {OWNER} LOGIN")
    dsn = cluster.dsn("app")
    install(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SELECT ai.grant_ai_usage('{OWNER}')")
        conn.execute(f"CREATE SCHEMA bench AUTHORIZATION {OWNER}")
    return dsn, psycopg.conninfo.make_conninfo(dsn, user=OWNER)


def _scheduler_backends(conn) -> int:
    return conn.execute("""SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'
                           AND query LIKE 'CALL ai._scheduler(%%'""").fetchone()[0]


def measure(dsn: str, owner_dsn: str, count: int, rounds: int, first: int) -> tuple[list[float], int]:
    """Freshness samples (seconds) for `count` vectorizers and the most scheduler backends seen."""
    tables = [f"bench.t{first + i}" for i in range(count)]
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        for t in tables:
            conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, body text)")
            conn.execute(f"""SELECT ai.create_vectorizer('{t}'::regclass, loading => ai.loading_column('body'),
                             embedding => ai.embedding_ollama('all-minilm', 384), indexing => ai.indexing_none())""")
    samples: list[float] = []
    most = 0
    with psycopg.connect(owner_dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as su:
        for r in range(rounds):
            committed = {}
            for t in tables:
                conn.execute(f"INSERT INTO {t} VALUES (%s, %s)", (r, f"row {r} of {t}: fresh text to find"))
                committed[t] = time.perf_counter()
            waiting = set(tables)
            deadline = time.perf_counter() + 180
            while waiting and time.perf_counter() < deadline:
                for t in list(waiting):
                    if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t}_embedding_store WHERE id = %s)", (r,)).fetchone()[0]:
                        samples.append(time.perf_counter() - committed[t])
                        waiting.discard(t)
                most = max(most, _scheduler_backends(su))
                time.sleep(0.02)
            if waiting:
                raise SystemExit(f"{len(waiting)} rows were not searchable after 180 s")
    return samples, most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with stack() as (cluster, model_url):
        dsn, owner_dsn = _prepare(cluster, model_url)
        with psycopg.connect(dsn) as conn:
            backends = conn.execute("SELECT backends FROM ai._scheduler").fetchone()[0]
            say("waiting for pg_cron to start the scheduler (at the next minute)")
            deadline = time.monotonic() + 90
            while not conn.execute("SELECT last_seen IS NOT NULL FROM ai._scheduler").fetchone()[0]:
                if time.monotonic() > deadline:
                    raise SystemExit("the scheduler did not start within 90 s")
                time.sleep(0.5)
        rows, first = [], 0
        for count in (int(c) for c in args.counts.split(",")):
            say(f"{count} vectorizer(s), {args.rounds} rounds")
            samples, most = measure(dsn, owner_dsn, count, args.rounds, first)
            first += count
            rows.append([count, len(samples), f"{percentile(samples, 50):.2f}", f"{percentile(samples, 95):.2f}",
                         f"{max(samples):.2f}", most, backends])
        table("Freshness: commit to searchable, background only (application database, pg_cron elsewhere)",
              ["vectorizers", "rows", "p50 s", "p95 s", "max s", "scheduler backends seen", "backends setting"],
              rows, "Each round commits one row in every table at once; real all-minilm via `pgweave serve`.")


if __name__ == "__main__":
    main()
