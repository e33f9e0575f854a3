"""pgai's SQL helpers that have no vectorizer behind them: text chunkers and OpenAI token ids.

The chunkers are the vectorizers' own (``chunking``, with its checks), with LangChain's
defaults, which pgai's ``ai.chunk_text`` / ``ai.chunk_text_recursively`` use for a NULL argument.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from . import chunking, openai
from .errors import fail

# LangChain's TextSplitter defaults (what pgai passes on for a NULL argument).
_SIZE, _OVERLAP = 4000, 200
_RECURSIVE_SEPARATORS = ["\n\n", "\n", " ", ""]


def _chunks(config: dict[str, Any], text: str | None) -> Iterator[tuple[int, str]]:
    """(seq, chunk) rows of ``text`` by a chunking config, checked as a vectorizer's is."""
    config = {k: v for k, v in config.items() if v is not None}
    config.setdefault("chunk_size", _SIZE)
    config.setdefault("chunk_overlap", min(_OVERLAP, config["chunk_size"] // 2))
    try:
        chunking.check_config(config)
        return enumerate(chunking.chunk(config, text))
    except chunking.ChunkingConfigError as exc:
        fail(str(exc), sqlstate="22023", hint=exc.hint)
    except ValueError as exc:
        fail(str(exc), sqlstate="22023")


def chunk_text(text: str | None, chunk_size: int | None, chunk_overlap: int | None,
               separator: str | None, is_separator_regex: bool | None) -> Iterator[tuple[int, str]]:
    """(seq, chunk) rows of ``text`` split on one separator; NULL text has none."""
    return _chunks({"implementation": "character_text_splitter", "chunk_size": chunk_size,
                    "chunk_overlap": chunk_overlap, "separator": separator,
                    "is_separator_regex": bool(is_separator_regex)}, text)


def chunk_text_recursively(text: str | None, chunk_size: int | None, chunk_overlap: int | None,
                           separators: Sequence[str] | None,
                           is_separator_regex: bool | None) -> Iterator[tuple[int, str]]:
    """(seq, chunk) rows of ``text`` split recursively on ``separators``; NULL text has none."""
    return _chunks({"implementation": "recursive_character_text_splitter", "chunk_size": chunk_size,
                    "chunk_overlap": chunk_overlap,
                    "separators": list(separators) if separators else _RECURSIVE_SEPARATORS,
                    "is_separator_regex": bool(is_separator_regex)}, text)


def _encoding(model: str) -> Any:
    """tiktoken's encoding of an OpenAI model, or an error saying why there is none here."""
    try:
        import tiktoken
    except ImportError:
        fail("ai.openai_tokenize and ai.openai_detokenize need the tiktoken package in the database "
             "server's Python, which does not have it", sqlstate="0A000",
             hint="count tokens in the client (pip install tiktoken), or install python3-tiktoken on "
                  "the database server together with its encoding files (it downloads them otherwise)")
    try:
        return tiktoken.encoding_for_model(model)
    except KeyError:
        fail(f"tiktoken knows no encoding for model {model!r}", sqlstate="22023",
             hint="name an OpenAI model, e.g. 'text-embedding-3-small'")
    except Exception as exc:  # the encoding's file could not be fetched (no network)
        fail(f"tiktoken could not load the encoding of {model!r}: {exc}", sqlstate="58000",
             hint="set TIKTOKEN_CACHE_DIR for the server to a directory holding the encoding files")


def tokenize(model: str, text: str | None) -> list[int] | None:
    """OpenAI token ids of ``text`` for ``model``."""
    return None if text is None else _encoding(model).encode(text)


def detokenize(model: str, tokens: Sequence[int] | None) -> str | None:
    """The text of OpenAI token ids for ``model``."""
    return None if tokens is None else _encoding(model).decode(list(tokens))


def embed_tokens(model: str, tokens: Sequence[int] | None, *args: Any) -> str | None:
    """The embedding of one input given as OpenAI token ids (pgvector text); NULL in, NULL out."""
    if tokens is None:
        return None
    vector, = openai.embed(model, [list(tokens)], *args)
    return vector
