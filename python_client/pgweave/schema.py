"""Apply what every install re-applies: the in-database Python and the SQL functions.

Tables are created once by the alembic revisions in ``migrations/``; functions and views
(``sql/functions/*.sql``, ``CREATE OR REPLACE``) and the modules of ``plpython/`` are
written on every install, in the migration's transaction, stamped with one code hash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import __version__
from .resources import resource_dir

CODE_PACKAGE = "pgweave_db"
HASH_PLACEHOLDER = "@CODE_HASH@"


def python_modules() -> dict[str, tuple[bool, str]]:
    """Map each in-database module name to (is_package, source)."""
    root = resource_dir("plpython")
    modules: dict[str, tuple[bool, str]] = {}
    for path in sorted((root / CODE_PACKAGE).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        is_package = rel.name == "__init__"
        parts = rel.parts[:-1] if is_package else rel.parts
        modules[".".join(parts)] = (is_package, path.read_text())
    return modules


def function_files() -> list[Path]:
    """The re-applied SQL files, in the order of their numeric prefixes."""
    return sorted(resource_dir("sql").joinpath("functions").glob("*.sql"))


def code_hash() -> str:
    """Hash of the package version, every in-database module and every function file."""
    digest = hashlib.sha256(__version__.encode())
    for name, (_, source) in python_modules().items():
        digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    for path in function_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def apply_code(cursor) -> str:
    """Write modules, install row and functions through a DB-API cursor; return the hash."""
    chash = code_hash()
    cursor.execute("DELETE FROM ai._python_module")
    for name, (is_package, source) in python_modules().items():
        cursor.execute(
            "INSERT INTO ai._python_module (name, is_package, source) VALUES (%s, %s, %s)",
            (name, is_package, source),
        )
    cursor.execute(
        "INSERT INTO ai.pgweave_install (version, code_hash) VALUES (%s, %s) "
        "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, "
        "code_hash = excluded.code_hash, installed_at = now()",
        (__version__, chash),
    )
    for path in function_files():
        cursor.execute(path.read_text().replace(HASH_PLACEHOLDER, chash))
    return chash
