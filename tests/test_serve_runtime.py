"""The embedding runtimes of `pgweave serve`: what "auto" picks, and what each one does to vectors.

In-process, on the real all-minilm model: bf16 stays within cosine 0.9999 of fp32 (so "auto" may
pick it), int8 does not (so "auto" never does), and "auto" follows the CPU's measured bfloat16
matrix-multiply speed.
"""

from __future__ import annotations

import numpy as np
import pytest

from pgweave.serve import catalog, models
from pgweave.serve.models import BF16_MIN_SPEEDUP, ServedModel, bf16_speedup, resolve_runtime

TEXTS = ["CREATE INDEX CONCURRENTLY builds an index without locking out writes.",
         "VACUUM reclaims storage occupied by dead tuples.",
         "GRANT SELECT ON TABLE films TO manuel;",
         "", "ü" * 3000]


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    """The same texts embedded by each runtime."""
    entry = catalog.find("all-minilm")
    path = catalog.present_path(entry)
    return {runtime: ServedModel(entry.name, path, "embedding", runtime=runtime).embed(TEXTS)[0]
            for runtime in ("fp32", "bf16", "int8")}


def test_bf16_keeps_the_vectors_and_int8_moves_them(vectors):
    cos = {runtime: (v * vectors["fp32"]).sum(1) for runtime, v in vectors.items()}
    assert cos["bf16"].min() > 0.9999, cos["bf16"]
    assert cos["int8"].min() < 0.9999, "int8 changed nothing: it is not quantizing"
    for v in vectors.values():
        assert v.dtype == np.float32 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3)


def test_auto_follows_the_measured_bf16_speed_and_never_picks_int8(monkeypatch):
    assert bf16_speedup() >= 0  # the real measurement runs here (0.0 where bf16 is emulated)
    for speedup, picked in ((0.0, "fp32"), (0.6, "fp32"), (BF16_MIN_SPEEDUP - 0.01, "fp32"),
                            (BF16_MIN_SPEEDUP, "bf16"), (3.0, "bf16")):
        monkeypatch.setattr(models, "bf16_speedup", lambda s=speedup: s)
        assert resolve_runtime("auto") == picked, speedup
    assert [resolve_runtime(r) for r in ("fp32", "bf16", "int8")] == ["fp32", "bf16", "int8"]


def test_an_unknown_runtime_names_the_choices():
    with pytest.raises(ValueError, match="unknown runtime 'fp8'; choose one of auto, fp32, bf16, int8"):
        resolve_runtime("fp8")
