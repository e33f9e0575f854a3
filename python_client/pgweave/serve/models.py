"""The models the server knows: sentence-transformers embedders and causal LMs, loaded lazily."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from . import catalog
from .catalog import canonical

# How embeddings are computed. "bf16" (autocast on the CPU's bfloat16) keeps cosine >= 0.9999
# to fp32 and is faster wherever the CPU's bfloat16 matrix multiplies are (AMX); "int8" (dynamic
# quantization) is faster still but moves vectors (cosine down to ~0.87), so only an explicit
# choice selects it. "auto" measures, once per process (bench/bench_runtime.py shows why).
RUNTIMES = ("auto", "fp32", "bf16", "int8")
# A request's texts go through the model in one encode() call, which sorts them by length and
# runs them in forward passes of this many. Measured on 2 CPU cores with 448 documentation
# chunks of ~180 tokens: 8 → 39 texts/s, 16 → 38, 32 → 32, 64 → 26, all 448 at once → 14
# (attention over long padded batches costs more than it saves).
ENCODE_BATCH = 16


class ModelNotFound(LookupError):
    """No model of that name is served."""


class InputTooLong(ValueError):
    """An input exceeds the context window and truncation was refused."""


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16/AMX); emulated bf16 is slower than fp32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# "auto" takes bf16 only when its matrix multiplies beat fp32's by this much: below it, autocast's
# casts eat the gain (measured: GEMMs are ~2/3 of an encode).
BF16_MIN_SPEEDUP = 1.3


@functools.lru_cache(maxsize=1)
def bf16_speedup() -> float:
    """How many times faster this CPU multiplies bfloat16 matrices than float32 ones, on the shape
    of a small embedding model's feed-forward layer (about 0.2 s, once per process); 0.0 where
    bfloat16 is not native (emulated bf16 is always slower)."""
    import torch

    if not cpu_has_bf16():
        return 0.0
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, w = torch.randn(512, 384).to(dtype), torch.randn(1536, 384).to(dtype)
        torch.nn.functional.linear(x, w)
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(4):
                torch.nn.functional.linear(x, w)
            best = min(best, time.perf_counter() - start)
        rates[dtype] = 1 / best
    return rates[torch.bfloat16] / rates[torch.float32]


def resolve_runtime(runtime: str) -> str:
    """The embedding runtime to use. "auto" is bf16 where this CPU's bfloat16 matrix multiplies
    are at least BF16_MIN_SPEEDUP times faster than fp32's (CPUs with AMX), else fp32: both keep
    the vectors within cosine 0.9999 of fp32. On this project's avx512_bf16 CPU without AMX, bf16
    multiplies at 0.61x of fp32 (bench/bench_runtime.py, 2026-11-29), so auto is fp32 there."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    return "bf16" if bf16_speedup() >= BF16_MIN_SPEEDUP else "fp32"


def _safetensors_params(path: Path) -> int:
    """Parameters in a safetensors file, read from its JSON header without loading tensors."""
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")


@dataclass
class ServedModel:
    """One model: where it lives, what it is, and (once used) the loaded object."""

    name: str                       # canonical, e.g. all-minilm:latest
    path: Path
    kind: str                       # "embedding" or "generate"
    aliases: tuple[str, ...] = ()
    family: str = "bert"
    runtime: str = "fp32"           # embeddings: fp32, bf16 or int8 (see RUNTIMES)
    modified_at: str = ""
    loaded_at: float | None = None
    load_seconds: float = 0.0
    _model: Any = None
    _tokenizer: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)       # one model call at a time
    _load_lock: threading.Lock = field(default_factory=threading.Lock)  # one load, however many callers
    _files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Read the directory's file metadata once: tags and show must not load the model."""
        self._files = sorted(p for p in self.path.rglob("*") if p.is_file() and ".git" not in p.parts)
        if not self.modified_at and self._files:
            mtime = max(p.stat().st_mtime for p in self._files)
            self.modified_at = datetime.fromtimestamp(mtime, timezone.utc).astimezone().isoformat()
        config = self.path / "config.json"
        if config.is_file():  # the architecture Ollama reports (bert for all-minilm), known before loading
            self.family = json.loads(config.read_text()).get("model_type", self.family)

    @property
    def size(self) -> int:
        """Bytes on disk."""
        return sum(p.stat().st_size for p in self._files)

    @property
    def digest(self) -> str:
        """A 64-hex digest like Ollama's; changes whenever a model file changes."""
        h = hashlib.sha256()
        for p in self._files:
            st = p.stat()
            h.update(f"{p.relative_to(self.path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def details(self) -> dict[str, Any]:
        """The ``details`` object of /api/tags, /api/show and /api/ps."""
        params = self.parameter_count()
        return {"parent_model": "", "format": "safetensors", "family": self.family,
                "families": [self.family], "parameter_size": _human(params),
                "quantization_level": "F32"}

    def parameter_count(self) -> int:
        """Parameter count, from safetensors headers (no load needed) or the loaded model."""
        weights = [p for p in self._files if p.suffix == ".safetensors"]
        if weights:
            return sum(_safetensors_params(p) for p in weights)
        if self._model is None:
            return 0
        return int(sum(p.numel() for p in self._model.parameters()))

    def ensure_loaded(self) -> float:
        """Load the model if needed; return the seconds this call spent loading (0 if it was loaded)."""
        if self._model is not None:
            return 0.0
        with self._load_lock:  # concurrent first requests must not load the model twice
            if self._model is not None:
                return 0.0
            start = time.perf_counter()
            if self.kind == "embedding":
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(self.path), device="cpu")
                if self.runtime == "int8":
                    import torch

                    # In place: the transformer is reached through a read-only property.
                    torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8,
                                                           inplace=True)
                self._model = model
                self.family = getattr(self._model[0].auto_model.config, "model_type", self.family)
            else:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
                model = AutoModelForCausalLM.from_pretrained(str(self.path))
                model.eval()
                self.family = getattr(model.config, "model_type", "llm")
                self._model = model  # published last: other threads test _model without the lock
            self.load_seconds = time.perf_counter() - start
            self.loaded_at = time.time()
            return self.load_seconds

    # -- embedding ------------------------------------------------------------------------
    def embedder(self):
        """The loaded SentenceTransformer (loaded on first use)."""
        self.ensure_loaded()
        return self._model

    @property
    def dimensions(self) -> int:
        """Embedding dimensions."""
        model = self.embedder()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    @property
    def context_length(self) -> int:
        """Context window in tokens, special tokens included (max_seq_length for an embedder)."""
        if self.kind == "embedding":
            return int(self.embedder().max_seq_length)
        model, _ = self.generator()
        return int(getattr(model.config, "max_position_embeddings", 2048))

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text, special tokens included, before truncation."""
        if not texts:
            return []
        tokenizer = self.embedder().tokenizer if self.kind == "embedding" else self.generator()[1]
        # verbose=False: over-long inputs are expected here (they are what we are measuring).
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]]

    def embed(self, texts: list[str], truncate: bool = True, dimensions: int | None = None):
        """Encode all texts in one model call; return (unit float32 vectors as an array, prompt tokens)."""
        import numpy as np
        import torch

        model = self.embedder()
        window = self.context_length
        if dimensions is not None and not 1 <= dimensions <= self.dimensions:
            raise ValueError(f"dimensions must be between 1 and {self.dimensions}")
        if not texts:
            return np.zeros((0, dimensions or self.dimensions), dtype=np.float32), 0
        # Tokenizing inside the lock too: encode() flips the fast tokenizer's truncation state,
        # and a concurrent call on the same tokenizer fails with "Already borrowed".
        with self.lock:
            counts = self.count_tokens(texts)
            if not truncate and any(c > window for c in counts):
                raise InputTooLong("the input length exceeds the context length")
            # Inputs over the window are cut to it by the tokenizer (max_seq_length); encode()
            # sorts the texts by length so each forward pass pads little.
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.runtime == "bf16"):
                vectors = model.encode(texts, batch_size=ENCODE_BATCH, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
            vectors = vectors.astype(np.float32)
        if dimensions is not None and dimensions < vectors.shape[1]:
            vectors = vectors[:, :dimensions]
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        return vectors.astype(np.float32), sum(min(c, window) for c in counts)

    # -- generation -----------------------------------------------------------------------
    def generator(self):
        """The loaded causal LM and its tokenizer (loaded on first use)."""
        self.ensure_loaded()
        return self._model, self._tokenizer

    def generate(self, prompt: str, options: dict[str, Any]) -> dict[str, Any]:
        """Complete ``prompt`` in one piece: the last item of generate_stream."""
        *_, final = self.generate_stream(prompt, options)
        return final

    def generate_stream(self, prompt: str, options: dict[str, Any]) -> Iterator[str | dict[str, Any]]:
        """Complete ``prompt``, yielding text as tokens are decoded, then a dict (text, token counts,
        done_reason). Honours num_predict, temperature, top_k, top_p, repeat_penalty, seed and stop; generation ends
        at a stop sequence, or when the consumer stops reading."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        model, tokenizer = self.generator()
        window = self.context_length
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"][:, -window + 1:]
        if ids.shape[1] == 0:
            ids = torch.tensor([[tokenizer.cls_token_id or tokenizer.bos_token_id or 0]])
        num_predict = int(options.get("num_predict", options.get("max_tokens") or 64))
        if num_predict < 0:
            num_predict = 128
        temperature = float(options.get("temperature", 0.8))
        finished = threading.Event()  # set at a stop sequence or when the reader goes away

        class _Finished(StoppingCriteria):
            """Stop generating once ``finished`` is set."""

            def __call__(self, input_ids, scores, **kwargs):
                """One flag per sequence of the batch."""
                return torch.full((input_ids.shape[0],), finished.is_set(), dtype=torch.bool)

        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = {"max_new_tokens": max(1, min(num_predict, window - ids.shape[1])),
                                  "pad_token_id": tokenizer.pad_token_id or 0, "streamer": streamer,
                                  "stopping_criteria": StoppingCriteriaList([_Finished()]),
                                  # Ollama's default; without it a small model loops on one phrase.
                                  "repetition_penalty": float(options.get("repeat_penalty", 1.1))}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature,
                          top_k=int(options.get("top_k", 40)), top_p=float(options.get("top_p", 0.9)))
        else:
            kwargs.update(do_sample=False)
        result: dict[str, Any] = {}

        def run() -> None:
            """Generate under the model's lock (one generation at a time, so a seed means one thing)."""
            try:
                with self.lock, torch.no_grad():
                    if options.get("seed") is not None:
                        torch.manual_seed(int(options["seed"]))
                    result["out"] = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
            except BaseException as exc:  # handed to the reader below
                result["error"] = exc
                streamer.end()

        stops = options.get("stop") or []
        stops = [s for s in ([stops] if isinstance(stops, str) else stops) if s]
        hold = max((len(s) for s in stops), default=1) - 1  # text that may still become a stop sequence
        thread = threading.Thread(target=run, name=f"generate {self.name}", daemon=True)
        thread.start()
        text, sent, cut = "", 0, None
        try:
            for piece in streamer:
                if cut is not None:
                    continue
                text += piece
                hits = [text.index(s) for s in stops if s in text]
                if hits:
                    cut = min(hits)
                    finished.set()
                    if cut > sent:  # never below: the held-back tail covers any stop's beginning
                        yield text[sent:cut]
                    continue
                if len(text) - hold > sent:
                    yield text[sent:len(text) - hold]
                    sent = len(text) - hold
        finally:
            finished.set()
        thread.join()
        if "error" in result:
            raise result["error"]
        if cut is None and len(text) > sent:
            yield text[sent:]
        new_tokens = int(result["out"].shape[1] - ids.shape[1])
        done_reason = "stop" if cut is not None or new_tokens < kwargs["max_new_tokens"] else "length"
        yield {"text": text if cut is None else text[:cut], "prompt_tokens": int(ids.shape[1]),
               "completion_tokens": new_tokens, "done_reason": done_reason}


def _human(params: int) -> str:
    """A parameter count the way Ollama prints it (``22.7M``)."""
    if params <= 0:
        return "unknown"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if params >= size:
            return f"{params / size:.1f}{unit}".replace(".0", "")
    return str(params)


class Registry:
    """Name → model, with Ollama's name rules; catalog models pulled into ``home`` appear by themselves."""

    def __init__(self, home: Path | None = None, runtime: str = "fp32") -> None:
        """An empty registry over the models folder ``home``; embedders run with ``runtime``."""
        self._models: dict[str, ServedModel] = {}
        self._aliases: dict[str, str] = {}
        self.home = home or catalog.models_home()
        self.runtime = runtime
        self._lock = threading.Lock()

    def add(self, model: ServedModel) -> None:
        """Serve ``model`` under its name and aliases."""
        with self._lock:
            self._models[model.name] = model
            for alias in model.aliases:
                self._aliases[canonical(alias)] = model.name

    def refresh(self) -> None:
        """Serve every catalog model present in the home folder (a pull, by the CLI or /api/pull, adds one)."""
        for entry in catalog.CATALOG.values():
            if entry.name in self._models:
                continue
            path = catalog.present_path(entry, self.home)
            if path is not None:
                self.add(ServedModel(entry.name, path, entry.kind, aliases=entry.aliases,
                                     runtime=self.runtime if entry.kind == "embedding" else "fp32"))

    def get(self, name: str | None) -> ServedModel:
        """The model called ``name`` (or an alias of it); ModelNotFound naming what can be pulled otherwise."""
        if not name:
            raise ModelNotFound("model is required")
        key = canonical(name.strip())
        key = self._aliases.get(key, key)
        if key not in self._models:
            self.refresh()
            key = self._aliases.get(key, key)
        if key not in self._models:
            entry = catalog.find(name)
            hint = (f"pgweave models pull {entry.name}, or POST /api/pull" if entry else
                    f"models that can be pulled: {', '.join(catalog.pullable())}")
            raise ModelNotFound(f'model "{name}" not found, try pulling it first ({hint})')
        return self._models[key]

    def all(self) -> list[ServedModel]:
        """Every served model."""
        self.refresh()
        return list(self._models.values())

    def loaded(self) -> list[ServedModel]:
        """The models in memory (what /api/ps lists)."""
        return [m for m in self._models.values() if m.loaded_at is not None]


def default_registry(model_dirs: list[str] | None = None, generate_dirs: list[str] | None = None,
                     home: Path | None = None, runtime: str = "auto") -> Registry:
    """The catalog's present models (all-minilm always) plus local model directories; nothing is loaded yet."""
    registry = Registry(home, resolve_runtime(runtime))
    registry.refresh()
    for kind, specs in (("embedding", model_dirs or []), ("generate", generate_dirs or [])):
        for spec in specs:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            if not Path(path).is_dir():
                raise FileNotFoundError(f"model directory {path} does not exist")
            registry.add(ServedModel(canonical(name), Path(path).resolve(), kind, aliases=(name,),
                                     family="llm" if kind == "generate" else "bert",
                                     runtime=registry.runtime if kind == "embedding" else "fp32"))
    return registry
