"""A project-local throwaway PostgreSQL cluster (initdb/pg_ctl), for development and tests.

The cluster lives in a folder of its own, listens on a free loopback port and on a unix
socket inside that folder, trusts local connections and preloads pg_cron. Nothing here
touches a system cluster. PostgreSQL refuses to run as root, so as root the server runs
as the ``postgres`` system user that Debian's packages create.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_MAJOR = os.environ.get("PGWEAVE_PG_MAJOR", "15")
# pg_cron runs jobs in one database per cluster; the project-local cluster's is `pgweave`.
CRON_DATABASE = "pgweave"


class LocalDBError(RuntimeError):
    """The local cluster could not be created, started or stopped."""


def pg_bindir() -> Path:
    """Find the PostgreSQL server binaries (initdb, pg_ctl)."""
    candidates = [Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")]
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise LocalDBError(
        f"PostgreSQL {PG_MAJOR} server binaries not found; run `make setup` "
        "(or docker/install-stack.sh) to install them"
    )


def free_port() -> int:
    """Ask the kernel for a free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalCluster:
    """A throwaway cluster in ``root`` (data in ``root/data``, socket in ``root``)."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def port(self) -> int:
        port_file = self.root / "port"
        if not port_file.exists():
            raise LocalDBError(f"no cluster in {self.root}; run `pgweave db start` first")
        return int(port_file.read_text().strip())

    @property
    def user(self) -> str:
        return "postgres" if os.geteuid() == 0 else getpass.getuser()

    def dsn(self, dbname: str = "postgres") -> str:
        """Return a libpq URI for the cluster over loopback."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a server binary as the cluster's OS user."""
        cmd = [str(pg_bindir() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster with pg_cron preloaded and trust auth on loopback."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise LocalDBError("running as root needs the `postgres` OS user; run `make setup`") from exc
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            _check_traversable(self.root.parent, pw.pw_name)
        result = self._run(
            "initdb", "-D", str(self.datadir), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        if result.returncode != 0:
            raise LocalDBError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        port = free_port()
        (self.root / "port").write_text(f"{port}\n")
        settings = {
            "port": str(port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "shared_preload_libraries": "'pg_cron'",
            "cron.database_name": f"'{CRON_DATABASE}'",
            "cron.use_background_workers": "on",
            "max_worker_processes": "32",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# pgweave local cluster\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def standby(self, root: Path) -> "LocalCluster":
        """A hot standby of this (running) cluster in ``root``: ``pg_basebackup -R`` (streaming,
        read-only, follows every commit), on a port of its own; started. The backup starts with a
        fast checkpoint: the default spreads it over checkpoint_completion_target of
        checkpoint_timeout, which kept an idle test cluster waiting for up to two minutes."""
        standby = LocalCluster(root)
        standby.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(standby.root, pw.pw_uid, pw.pw_gid)
        result = self._run("pg_basebackup", "-D", str(standby.datadir), "-R", "-X", "stream", "--no-sync",
                           "--checkpoint=fast",
                           "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user)
        if result.returncode != 0:
            raise LocalDBError(f"pg_basebackup failed: {result.stderr.strip()}")
        port = free_port()
        (standby.root / "port").write_text(f"{port}\n")
        with (standby.datadir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# hot standby of {self.root}\nport = {port}\n"
                       f"unix_socket_directories = '{standby.root}'\n")
        standby.start()
        return standby

    def running(self) -> bool:
        return self.initialized() and self._run("pg_ctl", "status", "-D", str(self.datadir)).returncode == 0

    def start(self) -> str:
        """Create (if needed) and start the cluster; return its DSN."""
        if not self.initialized():
            self.init()
        if not self.running():
            # The port recorded at init may have been taken since; pick a new one then.
            if not _port_is_free(self.port):
                self._set_port(free_port())
            result = self._run(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir),
                "-l", str(self.root / "server.log"), "-o", f"-p {self.port}",
            )
            if result.returncode != 0:
                log = (self.root / "server.log")
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise LocalDBError(f"pg_ctl start failed: {result.stderr.strip()}\n{tail}")
        self._wait_ready()
        return self.dsn()

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster if it runs (mode: smart, fast or immediate, as pg_ctl's -m)."""
        if self.running():
            self._run("pg_ctl", "stop", "-m", mode, "-w", "-D", str(self.datadir))

    def destroy(self) -> None:
        """Stop the cluster and delete its folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _set_port(self, port: int) -> None:
        (self.root / "port").write_text(f"{port}\n")

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._run("pg_ctl", "status", "-D", str(self.datadir)).returncode == 0:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                        return
            time.sleep(0.1)
        raise LocalDBError(f"the local cluster in {self.root} did not become ready in {timeout:.0f}s")


def _check_traversable(path: Path, user: str) -> None:
    """Fail early when the server's OS user could not reach ``path``."""
    check = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(path)], check=False)
    if check.returncode != 0:
        raise LocalDBError(
            f"the `{user}` OS user cannot enter {path}; put the cluster under a folder it can "
            "reach (set PGWEAVE_LOCALDB, e.g. /tmp/pgweave-db) or `chmod o+x` the folders above it"
        )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def default_cluster() -> LocalCluster:
    """The project's cluster: ``$PGWEAVE_LOCALDB`` or ``.pgweave/db`` in the working directory."""
    return LocalCluster(Path(os.environ.get("PGWEAVE_LOCALDB", ".pgweave/db")))
