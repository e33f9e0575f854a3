"""pgweave: in-database AI for PostgreSQL.

The client API is imported on first use, so ``import pgweave`` stays cheap::

    from pgweave import Client, AsyncClient, ai, VectorizerNotFound
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "client": ["Client", "AsyncClient", "resolve_dsn"],
    "statements": ["SqlCall", "ai"],
    "results": ["Vectorizer", "VectorizerStatus", "VectorizerError", "SyncProgress", "SearchResult",
                "RagAnswer"],
    "errors": ["PgweaveError", "ConnectionFailed", "NotInstalled", "NotFound",
               "VectorizerNotFound", "ModelNotFound", "AlreadyExists", "InvalidArgument",
               "PermissionDenied", "ModelServerError", "DatabaseError", "NotInSync", "NotProcessed"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'pgweave' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
