"""`pgweave serve`: an Ollama-compatible model server (embeddings, and generation from a local LM).

Imports are lazy: the CLI reaches `pgweave.serve.commands` (the model catalog) without the serve extra.
"""

from __future__ import annotations

__all__ = ["create_app", "default_registry", "Registry", "run"]


def __getattr__(name: str):
    """create_app, default_registry and Registry, imported on first use (they need fastapi and torch)."""
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("default_registry", "Registry"):
        from . import models

        return getattr(models, name)
    raise AttributeError(name)


def run(host: str = "127.0.0.1", port: int = 11434, model_dirs: list[str] | None = None,
        generate_dirs: list[str] | None = None, log_level: str = "info", runtime: str | None = None,
        models_home: str | None = None) -> None:
    """Serve until interrupted; the runtime defaults to $PGWEAVE_RUNTIME, else auto."""
    import os
    from pathlib import Path

    import uvicorn

    from .app import create_app
    from .models import default_registry

    registry = default_registry(model_dirs, generate_dirs, Path(models_home) if models_home else None,
                                runtime or os.environ.get("PGWEAVE_RUNTIME", "auto"))
    print(f"pgweave serve: embedding runtime {registry.runtime}", flush=True)
    uvicorn.run(create_app(registry), host=host, port=port, log_level=log_level)
