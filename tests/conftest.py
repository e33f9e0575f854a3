"""The suite's fixtures live in tests/pgweave_testing/ and load here as plugins; tests import
helpers from `pgweave_testing.helpers`, never from this file.

A thread that raises fails the run (pyproject.toml turns pytest's unhandled-thread-exception
warning into an error), and every test's threads are CheckedThreads whose outcome it collects.
"""

from __future__ import annotations

pytest_plugins = [
    "pgweave_testing.database",
    "pgweave_testing.models",
    "pgweave_testing.vectorizers",
]
