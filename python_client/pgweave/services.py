"""Start and stop the local model server as a child process (for `make demo` and tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .localdb import free_port


class ServiceError(RuntimeError):
    """A local service did not start."""


@dataclass
class ModelServer:
    """A running `pgweave serve` child process."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "ModelServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_model_server(log_path: Path, port: int | None = None, timeout: float = 120.0,
                       extra_args: list[str] | None = None) -> ModelServer:
    """Start `python -m pgweave.serve` on a free loopback port and wait until it answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pgweave.serve", "--host", "127.0.0.1", "--port", str(port),
         *(extra_args or [])],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    server = ModelServer(process, url, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"the model server exited with {process.returncode}; "
                               f"log:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise ServiceError(f"the model server did not answer on {url} within {timeout:.0f}s; "
                       f"log: {log_path}")
