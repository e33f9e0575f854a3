"""Where the SQL, the in-database Python and the migrations live.

A wheel carries them under ``pgweave/_bundle``; an editable install or a source
checkout reads them from the repository's top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the directory holding ``sql``, ``plpython`` or ``migrations``."""
    for candidate in (_PACKAGE_DIR / "_bundle" / name, _PACKAGE_DIR.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"pgweave resource folder {name!r} not found; reinstall pgweave (pip install pgweave)"
    )
