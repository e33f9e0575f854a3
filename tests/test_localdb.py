"""The project-local throwaway cluster: start, DSN, pg_cron preloaded, stop."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg

from pgweave.localdb import CRON_DATABASE, LocalCluster


def test_local_cluster_starts_with_pg_cron_and_stops():
    root = Path(tempfile.mkdtemp(prefix="pgweave-localdb-"))
    cluster = LocalCluster(root)
    dsn = cluster.start()
    try:
        assert cluster.running()
        assert cluster.start() == dsn  # starting a running cluster is a no-op
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == "pg_cron"
            assert conn.execute("SHOW cron.database_name").fetchone()[0] == CRON_DATABASE
            conn.execute(f"CREATE DATABASE {CRON_DATABASE}")
        with psycopg.connect(cluster.dsn(CRON_DATABASE), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            for ext in ("vector", "plpython3u"):
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
            assert conn.execute("SELECT '[1,2]'::vector <-> '[1,3]'::vector").fetchone()[0] == 1.0
        # Unix socket in the cluster folder works too.
        with psycopg.connect(host=str(cluster.root), port=cluster.port, user=cluster.user,
                             dbname="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        cluster.stop()
        assert not cluster.running()
        assert cluster.start() == dsn  # restarts on the same port
    finally:
        cluster.destroy()
    assert not root.exists()
