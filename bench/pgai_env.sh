#!/usr/bin/env bash
# Create .pgai-venv: pgai 0.12.1 from PyPI with what its CLI (`pgai install`) and its
# vectorizer worker (Ollama embedding, column loading, LangChain chunking) need, and nothing
# that pulls torch. Used by bench/bench_vectorizer.py; kept apart from .venv so the two never mix.
#
#   bash bench/pgai_env.sh [VENV_DIR]        (default: .pgai-venv beside the Makefile; idempotent)
#
# Why not `pip install 'pgai[vectorizer-worker]==0.12.1'`: that extra pins docling==2.34.0,
# which pulls torch, torchvision and easyocr (gigabytes, CUDA wheels by default), plus
# google-cloud-aiplatform, boto3, litellm and pymupdf4llm. The worker imports docling,
# pymupdf, boto3, smart_open and litellm only lazily (document parsing, S3 loading, LiteLLM
# embedding), so pgai goes in with --no-deps and we pin its base requirements plus the
# worker modules that are imported at start-up or used by a column/Ollama vectorizer.
# pgai.vectorizer refuses to import without tiktoken (its marker for the extra), and
# embedders/voyageai.py imports tokenizers at module level, so both are here too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.pgai-venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
STAMP="$VENV/.pgai-0.12.1-installed"

if [[ -f "$STAMP" && -x "$VENV/bin/pgai" ]]; then
    exit 0
fi

PIP=(--disable-pip-version-check -q)
quiet() { grep -v '^WARNING: Location' || true; }

echo "[pgai-env] creating $VENV with pgai==0.12.1 (no torch)"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install "${PIP[@]}" --no-deps pgai==0.12.1 2>&1 | quiet
# pgai's base requirements, then the worker subset (see above), at exact versions;
# transitive dependencies are left to pip (none of them is torch: checked below).
"$VENV/bin/pip" install "${PIP[@]}" \
    'click==8.5.1' 'datadog-lambda==6.111.0' 'psycopg[binary]==3.3.9' 'pydantic==2.14.3' \
    'python-dotenv==1.2.4' 'pytimeparse==1.1.10' 'semver==3.1.1' 'structlog==25.5.0' \
    'typing-extensions==4.16.0' \
    'ollama==0.5.4' 'langchain-text-splitters==0.3.11' 'pgvector==0.5.1' 'numpy==2.4.6' \
    'ijson==3.6.0' 'filetype==1.2.0' 'exceptiongroup==1.3.1' 'tiktoken==0.14.0' \
    'tokenizers==0.23.3' 2>&1 | quiet

if "$VENV/bin/pip" list 2>/dev/null | grep -iE '^(torch|nvidia-|triton|docling) '; then
    echo "[pgai-env] refusing: something pulled torch/CUDA/docling into $VENV (listed above)" >&2
    exit 1
fi
"$VENV/bin/python" - <<'EOF'
import pgai, pgai.cli, pgai.vectorizer.worker, pgai.vectorizer.vectorizer  # the worker's import path
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: F401  chunking
import ollama  # noqa: F401  the Ollama embedder
assert pgai.__version__ == "0.12.1", pgai.__version__
EOF
touch "$STAMP"
echo "[pgai-env] ready: $VENV/bin/pgai ($("$VENV/bin/pgai" --version 2>/dev/null | tail -1))"
