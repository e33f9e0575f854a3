"""The suite's own rules, checked: a thread that raises fails the run (pyproject.toml's
filterwarnings), even when the test itself forgot to look at the thread."""

from __future__ import annotations

import subprocess
import sys

from pgweave_testing.helpers import REPO

FORGETFUL = '''
import threading

def test_forgets_its_thread():
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()
'''


def test_a_thread_that_raises_fails_the_run(tmp_path):
    (tmp_path / "test_forgetful.py").write_text(FORGETFUL)
    done = subprocess.run([sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"),
                           "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-q", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout and "ZeroDivisionError" in done.stdout
