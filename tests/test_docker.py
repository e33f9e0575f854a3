"""No Docker engine runs here, so the images must share the host's one tested install path."""

from __future__ import annotations

import subprocess

from pgweave_testing.helpers import REPO


def test_postgres_image_runs_the_same_install_script_as_make_setup():
    dockerfile = (REPO / "docker" / "Dockerfile.postgres").read_text()
    assert "COPY docker/install-stack.sh" in dockerfile
    assert "bash /tmp/install-stack.sh" in dockerfile
    makefile = (REPO / "Makefile").read_text()
    assert "bash docker/install-stack.sh" in makefile


def test_shell_scripts_parse():
    for script in ["docker/install-stack.sh", "docker/entrypoint-postgres.sh", ".ci/run"]:
        result = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"


def test_install_script_is_idempotent():
    # `make test` ran it already, so a second run must find everything and install nothing.
    result = subprocess.run(["bash", str(REPO / "docker" / "install-stack.sh")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Debian packages present" in result.stdout
    assert "pgvector 0.8.0 present" in result.stdout
    assert "apt-get install" not in result.stdout + result.stderr  # nothing was installed again
