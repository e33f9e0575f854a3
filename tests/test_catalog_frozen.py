"""A released catalog file never changes: a change goes into a new numbered file.

tests/data/catalog_frozen.txt lists the sha256 of every released file under sql/catalog/ (as
pgai's frozen.txt does). Installed databases ran the released files once and will never run
them again, so editing one would leave them different from a fresh install.
"""

from __future__ import annotations

import hashlib
import re

from pgweave_testing.helpers import REPO

CATALOG = REPO / "sql" / "catalog"
FROZEN = REPO / "tests" / "data" / "catalog_frozen.txt"


def _frozen() -> dict[str, str]:
    """File name -> sha256, as released."""
    lines = [line.split() for line in FROZEN.read_text().splitlines() if line.strip()]
    return {name: digest for digest, name in lines}


def _number(name: str) -> int:
    """The ordinal a catalog file's name starts with."""
    match = re.match(r"(\d{4})_", name)
    assert match, f"sql/catalog/{name} does not start with a four-digit number"
    return int(match.group(1))


def test_released_catalog_files_are_unchanged():
    frozen = _frozen()
    assert {"0001_foundation.sql", "0004_search.sql"} <= set(frozen)
    for name, digest in frozen.items():
        path = CATALOG / name
        assert path.exists(), f"released sql/catalog/{name} was removed; add a new file instead"
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        assert actual == digest, (f"released sql/catalog/{name} was edited: put the change in a new "
                                  "numbered file (installed databases never run this one again)")


def test_unreleased_catalog_files_come_after_every_released_one():
    frozen = _frozen()
    last_released = max(_number(n) for n in frozen)
    for path in sorted(CATALOG.glob("*.sql")):
        if path.name not in frozen:
            assert _number(path.name) > last_released, (
                f"sql/catalog/{path.name} is not in {FROZEN.name} yet numbered among released files")
