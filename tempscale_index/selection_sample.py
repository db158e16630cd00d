"""The selector's sample: runs of neighbouring full-length texts of one document, ordered by a content key.

Evidence for a document schedule must come from texts the schedule changes (above ``SHORT_TOKENS`` tokens) and
must not depend on the order the corpus arrives in. A *block* is a few neighbouring texts of one document: at
chunk level, consecutive chunks of a document (in the order the document's own chunks are given, its reading
order); at document level (a document given as one text longer than the window), its first window and the window
after it. Blocks are ranked by the SHA-256 of their texts, so the same corpus in any order of documents, and in
any process, yields the same sample (Python's ``hash()`` is salted per process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tempscale_index.embedding import TempScaleEmbedding

SHORT_TOKENS = 128  # texts of at most this many tokens keep τ = 1 under every candidate schedule
BLOCK_TEXTS = 2  # neighbouring chunks per block: one pair (two probes); small blocks reach more documents


@dataclass(frozen=True)
class Block:
    """Neighbouring texts of one document (each longer than ``SHORT_TOKENS`` tokens), in reading order."""

    texts: tuple[str, ...]
    group: str


def content_key(*texts: str) -> str:
    """A key of the texts themselves, the same in every process and for every order of the corpus."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def document_groups(texts: Sequence[str], groups: Sequence[str] | None) -> list[str]:
    """Each text's document name; without ``groups``, a text is its own document, named by its content."""
    if groups is None:
        return [content_key(text) for text in texts]
    return [str(group) for group in groups]


def ranked_blocks(embedding: TempScaleEmbedding, texts: Sequence[str], groups: Sequence[str]) -> Iterator[Block]:
    """Every usable block of the corpus, in content-key order (lazily checked, so a small sample stays cheap)."""
    by_group: dict[str, list[str]] = {}
    for text, group in zip(texts, groups):
        by_group.setdefault(group, []).append(text)
    candidates: list[tuple[str, str, tuple[str, ...]]] = []
    for group, members in by_group.items():
        if len(members) == 1:
            candidates.append((content_key(members[0]), group, (members[0],)))
            continue
        for start in range(0, len(members), BLOCK_TEXTS):
            run = tuple(members[start : start + BLOCK_TEXTS])
            candidates.append((content_key(*run), group, run))
    for _, group, run in sorted(candidates):
        pieces = _windows(embedding, run[0]) if len(run) == 1 else _long_prefix(embedding, run)
        if len(pieces) >= 2:
            yield Block(pieces, group)


def _long_prefix(embedding: TempScaleEmbedding, run: tuple[str, ...]) -> tuple[str, ...]:
    """The leading texts of ``run`` that the schedule changes (a document's short last chunk ends it)."""
    counts = embedding.token_counts(run)
    kept: list[str] = []
    for text, count in zip(run, counts):
        if count <= SHORT_TOKENS:
            break
        kept.append(text)
    return tuple(kept)


def _windows(embedding: TempScaleEmbedding, text: str) -> tuple[str, ...]:
    """A whole document as the index holds it (its first window) and the window that follows it, when both
    are long enough for the schedule to change them; else nothing."""
    assert embedding.max_length is not None
    window = embedding.max_length - 2  # the model adds two special tokens
    encoded = embedding.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    spans = encoded["offset_mapping"]
    if len(spans) <= window + SHORT_TOKENS:
        return ()
    first = text[: spans[window - 1][1]]
    second = text[spans[window][0] : spans[min(2 * window, len(spans)) - 1][1]]
    return (first, second)
