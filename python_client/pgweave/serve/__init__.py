"""`pgweave serve`: an Ollama-compatible model server (embeddings, and generation from a local LM)."""

from __future__ import annotations

from .app import create_app
from .models import Registry, default_registry

__all__ = ["create_app", "default_registry", "Registry", "run"]


def run(host: str = "127.0.0.1", port: int = 11434, model_dirs: list[str] | None = None,
        generate_dirs: list[str] | None = None, log_level: str = "info") -> None:
    """Serve until interrupted."""
    import uvicorn

    app = create_app(default_registry(model_dirs, generate_dirs))
    uvicorn.run(app, host=host, port=port, log_level=log_level)
