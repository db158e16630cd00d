"""The selector's sample: runs of neighbouring full-length texts of one document, ordered by a content key.

Evidence for a document schedule must come from texts the schedule changes (above ``SHORT_TOKENS`` tokens) and
must not depend on the order the corpus arrives in. A *block* is a few neighbouring texts of one document: at
chunk level, consecutive chunks of a document (in the order the document's own chunks are given, its reading
order); at document level (a document given as one text longer than the window), its first window and the window
after it, then the next two windows, and so on (up to ``MAX_WINDOW_PAIRS``): a corpus of a dozen long documents
still yields a sample of a few hundred full-length texts. Blocks are ranked by the SHA-256 of their texts, so the
same corpus in any order of documents, and in any process, yields the same sample (Python's ``hash()`` is salted
per process); a whole document's later window pairs come after every document's first, in the same order.
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
MAX_WINDOW_PAIRS = 16  # window pairs taken from one whole document (the tokenizer reads no further)
PROBE_TOKENS = 48  # a probe is this many tokens from the middle of its text: query-sized, clear of chunk overlaps


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
    """Every usable block of the corpus, in content-key order (lazily checked, so a small sample stays cheap):
    chunk pairs and each whole document's first window pair, then the whole documents' later pairs, round by
    round."""
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
    later: list[tuple[str, list[tuple[str, str]]]] = []  # whole documents' further window pairs, in key order
    for _, group, run in sorted(candidates):
        if len(run) == 1:
            pairs = _window_pairs(embedding, run[0])
            if pairs:
                yield Block(pairs[0], group)
                later.append((group, pairs[1:]))
        elif len(pieces := _long_prefix(embedding, run)) >= 2:
            yield Block(pieces, group)
    for round_ in range(MAX_WINDOW_PAIRS - 1):
        for group, pairs in later:
            if round_ < len(pairs):
                yield Block(pairs[round_], group)


def _long_prefix(embedding: TempScaleEmbedding, run: tuple[str, ...]) -> tuple[str, ...]:
    """The leading texts of ``run`` that the schedule changes (a document's short last chunk ends it)."""
    counts = embedding.token_counts(run)
    kept: list[str] = []
    for text, count in zip(run, counts):
        if count <= SHORT_TOKENS:
            break
        kept.append(text)
    return tuple(kept)


def _window_pairs(embedding: TempScaleEmbedding, text: str) -> list[tuple[str, str]]:
    """A whole document's consecutive windows in pairs: first the window the index holds (its first) and the
    one after it, then the third and fourth, …; a pair counts when both are long enough for the schedule to
    change them."""
    assert embedding.max_length is not None
    window = embedding.max_length - 2  # the model adds two special tokens
    spans = _token_spans(embedding, text, 2 * MAX_WINDOW_PAIRS * window)
    pairs = []
    for start in range(0, len(spans), 2 * window):
        middle, end = start + window, min(start + 2 * window, len(spans))
        if end - middle <= SHORT_TOKENS:
            break
        first = text[spans[start][0] : spans[middle - 1][1]]
        pairs.append((first, text[spans[middle][0] : spans[end - 1][1]]))
    return pairs


def probe_piece(embedding: TempScaleEmbedding, text: str) -> str:
    """The middle ``PROBE_TOKENS`` tokens of ``text``: a query-sized piece of what the text is about. The middle,
    because a chunk's first and last tokens may be its neighbour's too (chunks overlap), which would find the
    neighbour by copy rather than by topic."""
    spans = _token_spans(embedding, text)
    if len(spans) <= PROBE_TOKENS:
        return text
    start = (len(spans) - PROBE_TOKENS) // 2
    return text[spans[start][0] : spans[start + PROBE_TOKENS - 1][1]]


def _token_spans(embedding: TempScaleEmbedding, text: str, max_tokens: int | None = None) -> list[tuple[int, int]]:
    """Character span of each of ``text``'s tokens (no special tokens), the first ``max_tokens`` if given."""
    encoded = embedding.tokenizer(
        text,
        add_special_tokens=False,
        return_offsets_mapping=True,
        truncation=max_tokens is not None,
        max_length=max_tokens,
        verbose=False,
    )
    return encoded["offset_mapping"]
