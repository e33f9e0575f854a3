"""pgai's SQL helpers that have no vectorizer behind them: text chunkers and OpenAI tokens.

The chunkers are pgweave's own (``chunking``), with LangChain's defaults, which pgai's
``ai.chunk_text`` / ``ai.chunk_text_recursively`` use when an argument is NULL.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from .chunking import CharacterTextSplitter, RecursiveCharacterTextSplitter
from .errors import fail

# LangChain's TextSplitter defaults (what pgai passes on for a NULL argument).
_SIZE, _OVERLAP = 4000, 200
_RECURSIVE_SEPARATORS = ["\n\n", "\n", " ", ""]


def _sizes(chunk_size: int | None, chunk_overlap: int | None) -> tuple[int, int]:
    """chunk_size and chunk_overlap with defaults, or an error saying what is wrong."""
    size = _SIZE if chunk_size is None else chunk_size
    overlap = min(_OVERLAP, size) if chunk_overlap is None else chunk_overlap
    if size < 1 or overlap < 0 or overlap > size:
        fail(f"chunk_overlap ({overlap}) must be between 0 and chunk_size ({size}), and chunk_size positive",
             sqlstate="22023", hint="e.g. chunk_size => 800, chunk_overlap => 100")
    return size, overlap


def chunk_text(text: str | None, chunk_size: int | None, chunk_overlap: int | None,
               separator: str | None, is_separator_regex: bool | None) -> Iterator[tuple[int, str]]:
    """(seq, chunk) rows of ``text`` split on one separator; NULL text has none."""
    if text is None:
        return iter(())
    size, overlap = _sizes(chunk_size, chunk_overlap)
    splitter = CharacterTextSplitter(size, overlap, "\n\n" if separator is None else separator,
                                     bool(is_separator_regex))
    return enumerate(splitter.split_text(text))


def chunk_text_recursively(text: str | None, chunk_size: int | None, chunk_overlap: int | None,
                           separators: Sequence[str] | None,
                           is_separator_regex: bool | None) -> Iterator[tuple[int, str]]:
    """(seq, chunk) rows of ``text`` split recursively on ``separators``; NULL text has none."""
    if text is None:
        return iter(())
    size, overlap = _sizes(chunk_size, chunk_overlap)
    splitter = RecursiveCharacterTextSplitter(size, overlap, list(separators or _RECURSIVE_SEPARATORS),
                                              bool(is_separator_regex))
    return enumerate(splitter.split_text(text))


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
