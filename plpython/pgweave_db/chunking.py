"""Split a document into chunks, as LangChain's character text splitters do.

Written here instead of imported because this code runs inside PostgreSQL and is shipped
through the database (see ai._load_python): it may only use the server's standard library
and Debian's python3-urllib3, so `pgweave install` stays one command from any client.
tests/test_chunking.py checks it against langchain-text-splitters on real documents.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Sequence

DEFAULT_SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]
MIN_CHUNK_SIZE = 20           # smaller chunks carry no meaning and multiply rows and model calls
MAX_SEPARATORS = 32
DEFAULT_MAX_CHUNKS_PER_ROW = 10000
_CHECKED_CHUNKS = 100         # rows making more chunks than this are held to max_chunks_per_row
# A regex separator is tried on runs of one character (and of "\n "), of growing length, as
# the splitter uses it; one try taking longer than this means its time grows faster than the
# text (backtracking), and a long document would hold the backend beyond any timeout.
_PROBE_SIZES = (16, 20, 24, 28, 32, 64, 256, 1024, 4096, 8192)
_PROBE_SECONDS = 0.05


class ChunkingConfigError(ValueError):
    """A chunking config that cannot end well; ``hint`` says what to use instead."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def _split_with_regex(text: str, pattern: str, keep_separator: bool | str) -> list[str]:
    """Split on a regex; with keep_separator the separator starts (or ends) the next piece."""
    if not pattern:
        return [c for c in text if c != ""]
    if keep_separator:
        parts = re.split(f"({pattern})", text)
        if keep_separator == "end":
            pieces = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
            if len(parts) % 2 == 1:
                pieces.append(parts[-1])
        else:
            pieces = [parts[i] + parts[i + 1] for i in range(1, len(parts) - 1, 2)]
            if len(parts) % 2 == 0:
                pieces.append(parts[-1])
            pieces = [parts[0], *pieces]
    else:
        pieces = re.split(pattern, text)
    return [p for p in pieces if p != ""]


class _Splitter:
    """Merge small pieces into chunks of at most chunk_size, overlapping by chunk_overlap."""

    def __init__(self, chunk_size: int, chunk_overlap: int, strip_whitespace: bool = True,
                 length: Callable[[str], int] = len):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if chunk_overlap < 0 or chunk_overlap > chunk_size:
            raise ValueError(f"chunk_overlap must be between 0 and chunk_size ({chunk_size}), "
                             f"got {chunk_overlap}")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.strip_whitespace = strip_whitespace
        self.length = length

    def _join(self, pieces: list[str], separator: str) -> str | None:
        text = separator.join(pieces)
        if self.strip_whitespace:
            text = text.strip()
        return text or None

    def _merge(self, splits: Sequence[str], separator: str) -> list[str]:
        # The chunk being built is splits[start:i], of length ``total`` with its separators.
        sep_len, size, overlap = self.length(separator), self.chunk_size, self.chunk_overlap
        lengths = list(map(self.length, splits))
        chunks: list[str] = []
        start = total = 0
        for i, piece_len in enumerate(lengths):
            if total + piece_len + (sep_len if i > start else 0) > size and i > start:
                chunk = self._join(splits[start:i], separator)
                if chunk is not None:
                    chunks.append(chunk)
                # Drop pieces from the front until the rest fits as the overlap.
                while total > overlap or (total + piece_len + (sep_len if i > start else 0) > size and total > 0):
                    total -= lengths[start] + (sep_len if i - start > 1 else 0)
                    start += 1
            total += piece_len + (sep_len if i > start else 0)
        chunk = self._join(splits[start:], separator)
        if chunk is not None:
            chunks.append(chunk)
        return chunks


class CharacterTextSplitter(_Splitter):
    """Split on one separator, then merge (LangChain's CharacterTextSplitter)."""

    def __init__(self, chunk_size: int = 800, chunk_overlap: int = 400, separator: str = "\n\n",
                 is_separator_regex: bool = False):
        super().__init__(chunk_size, chunk_overlap)
        self.separator = separator
        self.is_separator_regex = is_separator_regex

    def split_text(self, text: str) -> list[str]:
        pattern = self.separator if self.is_separator_regex else re.escape(self.separator)
        return self._merge(_split_with_regex(text, pattern, False), self.separator)


class RecursiveCharacterTextSplitter(_Splitter):
    """Split on the first separator found, recursing with the next ones into long pieces."""

    def __init__(self, chunk_size: int = 800, chunk_overlap: int = 400,
                 separators: Sequence[str] | None = None, is_separator_regex: bool = False,
                 keep_separator: bool | str = True):
        super().__init__(chunk_size, chunk_overlap)
        self.separators = list(separators) if separators else list(DEFAULT_SEPARATORS)
        self.is_separator_regex = is_separator_regex
        self.keep_separator = keep_separator

    def split_text(self, text: str) -> list[str]:
        return self._split(text, self.separators)

    def _pattern(self, separator: str) -> str:
        return separator if self.is_separator_regex else re.escape(separator)

    def _split(self, text: str, separators: list[str]) -> list[str]:
        separator, rest = separators[-1], []
        for i, candidate in enumerate(separators):
            if candidate == "":
                separator = candidate
                break
            if (re.search(candidate, text) if self.is_separator_regex else candidate in text):
                separator, rest = candidate, separators[i + 1:]
                break
        splits = _split_with_regex(text, self._pattern(separator), self.keep_separator)
        join_with = "" if self.keep_separator else separator
        size = self.chunk_size
        chunks: list[str] = []
        good: list[str] = []
        for piece in splits:
            if self.length(piece) < size:
                good.append(piece)
                continue
            if good:
                chunks.extend(self._merge(good, join_with))
                good = []
            chunks.extend(self._split(piece, rest) if rest else [piece])
        if good:
            chunks.extend(self._merge(good, join_with))
        return chunks


def chunk(config: dict[str, Any], text: str | None, max_chunks: int | None = None) -> list[str]:
    """Chunk ``text`` by a vectorizer's chunking config; NULL or blank text has no chunks.

    A row that makes more than ``max_chunks`` chunks (default: the superuser's
    max_chunks_per_row) is refused with a ValueError instead of filling the store.
    """
    if text is None or not text.strip():
        return []
    kind = config.get("implementation", "recursive_character_text_splitter")
    if kind == "none":
        return [text]
    size, overlap = int(config.get("chunk_size", 800)), int(config.get("chunk_overlap", 400))
    regex = bool(config.get("is_separator_regex", False))
    if kind == "character_text_splitter":
        chunks = CharacterTextSplitter(size, overlap, config.get("separator", "\n\n"), regex).split_text(text)
    elif kind == "recursive_character_text_splitter":
        chunks = RecursiveCharacterTextSplitter(size, overlap, config.get("separators"), regex).split_text(text)
    else:
        raise ValueError(f"unknown chunking implementation {kind!r}")
    if len(chunks) > _CHECKED_CHUNKS:
        bound = max_chunks if max_chunks is not None else _max_chunks_per_row()
        if len(chunks) > bound:
            raise ValueError(f"a row of {len(text)} characters makes {len(chunks)} chunks, more than "
                             f"max_chunks_per_row ({bound}): raise chunk_size, or split the document "
                             "into several rows (a superuser sets the bound in ai._model_call_limit)")
    return chunks


def _max_chunks_per_row() -> int:
    """The superuser's bound inside PostgreSQL; the default where this module runs alone."""
    try:
        from . import settings
    except ImportError:  # loaded as a plain file (tests/test_chunking.py): no database
        return DEFAULT_MAX_CHUNKS_PER_ROW
    return int(settings.limit("max_chunks_per_row"))


def check_config(config: Any) -> None:
    """Raise ChunkingConfigError for a config that cannot end well (sizes, separators, regexes)."""
    if not isinstance(config, dict):
        raise ChunkingConfigError("chunking must be a JSON object",
                                  "use ai.chunking_recursive_character_text_splitter(...)")
    kind = config.get("implementation", "recursive_character_text_splitter")
    if kind == "none":
        return
    if kind not in ("character_text_splitter", "recursive_character_text_splitter"):
        raise ChunkingConfigError(f"unknown chunking implementation {kind!r}",
                                  "use ai.chunking_recursive_character_text_splitter(), "
                                  "ai.chunking_character_text_splitter() or ai.chunking_none()")
    size, overlap = config.get("chunk_size", 800), config.get("chunk_overlap", 400)
    if not isinstance(size, int) or isinstance(size, bool) or size < MIN_CHUNK_SIZE:
        raise ChunkingConfigError(
            f"chunk_size {size!r} is too small: chunks of fewer than {MIN_CHUNK_SIZE} characters "
            "carry no meaning and turn one row into thousands of rows and model calls",
            f"use chunk_size => 800 (characters), or at least {MIN_CHUNK_SIZE}")
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap <= size // 2:
        raise ChunkingConfigError(
            f"chunk_overlap {overlap!r} must be between 0 and half of chunk_size ({size // 2}): "
            "a larger overlap repeats most of the text in every chunk",
            f"use chunk_overlap => {size // 4} (a quarter of chunk_size) or less")
    separators = ([config.get("separator", "\n\n")] if kind == "character_text_splitter"
                  else config.get("separators") or DEFAULT_SEPARATORS)
    if not isinstance(separators, list) or len(separators) > MAX_SEPARATORS or not all(
            isinstance(sep, str) for sep in separators):
        raise ChunkingConfigError(f"separators must be a list of at most {MAX_SEPARATORS} strings",
                                  "pass e.g. ARRAY[E'\\n\\n', E'\\n', ' ', '']")
    if config.get("is_separator_regex"):
        for sep in separators:
            _check_regex(sep)


def _check_regex(pattern: str) -> None:
    """Refuse a separator regex that does not compile, or whose time grows faster than the text."""
    try:
        compiled = re.compile(f"({pattern})")
    except re.error as exc:
        raise ChunkingConfigError(f"separator {pattern!r} is not a valid regular expression: {exc}",
                                  "fix the expression, or pass is_separator_regex => false") from None
    alphabet = {" ", "\n", "\t", "a", "0", ".", "\n "} | {c for c in pattern if c.isprintable()}
    for unit in sorted(alphabet):
        for size in _PROBE_SIZES:
            probe = (unit * size)[:size] + "\x00"
            started = time.perf_counter()
            compiled.search(probe)
            compiled.split(probe)
            if time.perf_counter() - started > _PROBE_SECONDS:
                raise ChunkingConfigError(
                    f"separator {pattern!r} backtracks: on {size} repeated {unit!r} characters it "
                    f"takes over {_PROBE_SECONDS * 1000:g} ms, and a long document would hold the "
                    "database for minutes, beyond any statement_timeout",
                    "start the expression with a literal and avoid a repeat next to another that "
                    "matches the same characters, e.g. '\\n\\s*\\n' instead of '\\s*\\n\\s*\\n\\s*', "
                    "or pass is_separator_regex => false")
