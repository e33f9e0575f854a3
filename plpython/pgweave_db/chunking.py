"""Split a document into chunks, as LangChain's character text splitters do.

Written here instead of imported because this code runs inside PostgreSQL and is shipped
through the database (see ai._load_python): it may only use the server's standard library
and Debian's python3-requests, so `pgweave install` stays one command from any client.
tests/test_chunking.py checks it against langchain-text-splitters on real documents.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

DEFAULT_SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]


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
        sep_len = self.length(separator)
        chunks: list[str] = []
        current: list[str] = []
        total = 0
        for piece in splits:
            piece_len = self.length(piece)
            if total + piece_len + (sep_len if current else 0) > self.chunk_size:
                if current:
                    chunk = self._join(current, separator)
                    if chunk is not None:
                        chunks.append(chunk)
                    # Drop pieces from the front until the rest fits as the overlap.
                    while total > self.chunk_overlap or (
                        total + piece_len + (sep_len if current else 0) > self.chunk_size and total > 0
                    ):
                        total -= self.length(current[0]) + (sep_len if len(current) > 1 else 0)
                        current = current[1:]
            current.append(piece)
            total += piece_len + (sep_len if len(current) > 1 else 0)
        chunk = self._join(current, separator)
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
            if re.search(self._pattern(candidate), text):
                separator, rest = candidate, separators[i + 1:]
                break
        splits = _split_with_regex(text, self._pattern(separator), self.keep_separator)
        join_with = "" if self.keep_separator else separator
        chunks: list[str] = []
        good: list[str] = []
        for piece in splits:
            if self.length(piece) < self.chunk_size:
                good.append(piece)
                continue
            if good:
                chunks.extend(self._merge(good, join_with))
                good = []
            chunks.extend(self._split(piece, rest) if rest else [piece])
        if good:
            chunks.extend(self._merge(good, join_with))
        return chunks


def chunk(config: dict[str, Any], text: str | None) -> list[str]:
    """Chunk ``text`` by a vectorizer's chunking config; NULL or blank text has no chunks."""
    if text is None or not text.strip():
        return []
    kind = config.get("implementation", "recursive_character_text_splitter")
    if kind == "none":
        return [text]
    size, overlap = int(config.get("chunk_size", 800)), int(config.get("chunk_overlap", 400))
    regex = bool(config.get("is_separator_regex", False))
    if kind == "character_text_splitter":
        return CharacterTextSplitter(size, overlap, config.get("separator", "\n\n"), regex).split_text(text)
    if kind == "recursive_character_text_splitter":
        return RecursiveCharacterTextSplitter(size, overlap, config.get("separators"), regex).split_text(text)
    raise ValueError(f"unknown chunking implementation {kind!r}")
