"""The selector as users meet it: one corpus presented in several document orders and at several sizes.

`auto` must give one answer per corpus whatever order its files arrive in (issue 14), and a sub-corpus should get
the answer its full corpus gets when it holds enough evidence. A :class:`Presentation` is a subset of the corpus's
documents (a prefix of one seeded shuffle, so smaller sizes are nested in larger ones) in one order of
:func:`~tempscale_index.evaluation.orders.reordered` (seeded document shuffles; odd orders also interleave the
documents' chunks). A document's chunks keep their reading order; they are the very chunks the full corpus was cut
into, so every text the selector may embed whole is one the evaluator has cached.

:class:`LookupEmbedding` stands in for the embedding during selection: a (text, τ) pair whose vector is already
known (the full-corpus grid vectors) is served from memory, anything else is embedded once and remembered. Running
the selector on 15 presentations then costs about what one selection costs, or nothing when it embeds whole chunks.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tempscale_index.embedding import EncodedTexts, Kind
from tempscale_index.evaluation.orders import reordered
from tempscale_index.schedules import ConstantSchedule, ScheduleLike, as_schedule

if TYPE_CHECKING:
    from tempscale_index.chunking import Chunk
    from tempscale_index.embedding import TempScaleEmbedding

ORDERS = 5  # orders 0-4 of ``reordered``
FRACTIONS = (0.15, 0.4, 1.0)  # of the corpus's documents


@dataclass(frozen=True)
class Presentation:
    """``fraction`` of the corpus (``doc_ids``, in the corpus's own order), presented in order number ``order``."""

    fraction: float
    order: int
    doc_ids: tuple[str, ...]


def presentations(
    doc_ids: Sequence[str], fractions: Sequence[float] = FRACTIONS, orders: int = ORDERS, seed: int = 0
) -> Iterator[Presentation]:
    """Each fraction × order; the documents of a fraction are the same in every order."""
    if orders < 1 or not fractions or any(not 0 < fraction <= 1 for fraction in fractions):
        raise ValueError(f"need at least one order and fractions in (0, 1], got {orders} and {list(fractions)}")
    pool = list(doc_ids)
    random.Random(seed).shuffle(pool)
    for fraction in fractions:
        chosen = set(pool[: max(1, math.ceil(fraction * len(pool)))])
        own_order = tuple(doc_id for doc_id in doc_ids if doc_id in chosen)
        for order in range(orders):
            yield Presentation(fraction, order, own_order)


def presented_chunks(chunks: Sequence[Chunk], presentation: Presentation) -> tuple[list[str], list[str]]:
    """The texts and document ids the selector sees: the presentation's chunks in its order."""
    by_document: dict[str, list[str]] = defaultdict(list)
    for chunk in chunks:
        by_document[chunk.doc_id].append(chunk.text)
    texts: list[str] = []
    groups: list[str] = []
    for doc_id in presentation.doc_ids:
        texts.extend(by_document[doc_id])
        groups.extend([doc_id] * len(by_document[doc_id]))
    return reordered(texts, groups, presentation.order)


class LookupEmbedding:
    """The embedding, with ``encode`` served from known (text, τ) vectors where it can; everything else delegates.

    Exact for the selector: a text's vector depends only on the text and the τ it is embedded at, whichever
    schedule assigned that τ (the evaluator reuses rows across schedules on the same ground).
    """

    def __init__(self, embedding: TempScaleEmbedding) -> None:
        self._embedding = embedding
        self._known: dict[tuple[Kind, str, float], np.ndarray] = {}
        self.served = 0
        self.embedded = 0

    def remember(self, texts: Sequence[str], tau: float, vectors: np.ndarray, kind: Kind = "document") -> None:
        """Known vectors of ``texts`` (of ``kind``) at constant ``tau``, one row per text."""
        for text, row in zip(texts, vectors):
            self._known[(kind, text, round(tau, 6))] = row

    def encode(
        self,
        texts: Sequence[str],
        kind: Kind = "document",
        temperature_override: ScheduleLike | None = None,
        show_progress: bool | None = None,
    ) -> EncodedTexts:
        """``TempScaleEmbedding.encode`` (same signature: it stands in for it), from known vectors where it can."""
        if temperature_override is None:  # the embedding's own (possibly auto) schedule: nothing to look up
            return self._embedding.encode(texts, kind, None, show_progress)
        counts = self._embedding.token_counts(texts, kind)
        taus = as_schedule(temperature_override).taus(counts)
        vectors = np.zeros((len(texts), self._embedding.dimension), dtype=np.float32)
        missing: dict[float, list[int]] = defaultdict(list)
        for row, (text, tau) in enumerate(zip(texts, taus)):
            known = self._known.get((kind, text, round(tau, 6)))
            if known is None:
                missing[tau].append(row)
            else:
                vectors[row] = known
        self.served += len(texts) - sum(len(rows) for rows in missing.values())
        for tau, rows in missing.items():
            subset = [texts[row] for row in rows]
            encoded = self._embedding.encode(subset, kind, ConstantSchedule(tau), show_progress).embeddings
            vectors[rows] = encoded
            self.embedded += len(rows)
            self.remember(subset, tau, encoded, kind)
        return EncodedTexts(vectors, taus, counts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedding, name)
