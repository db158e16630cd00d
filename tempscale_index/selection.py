"""Unsupervised choice of the document τ schedule from a sample of a corpus's own chunks (no queries, no labels).

Retrieval needs a text to stay closer to text about the same thing than to everything else. The selector
measures exactly that on the corpus: each sampled chunk is cut into two halves that share no text, and the
*discrimination* of a half is how far (in standard deviations of the similarities between different chunks'
halves) its own other half stands out. TempScale's premise is that a lower τ spreads collapsed long texts apart; where
that holds, halves of the same chunk stand out more at τ < 1, and where a lower τ only sharpens attention on
surface tokens, the discrimination drops. A candidate τ is chosen only when the mean paired gain over τ = 1 has a
95% bootstrap interval (resampling source documents) entirely above zero; otherwise, or on too small a
sample, τ = 1.

Short chunks keep τ = 1 (a :class:`PiecewiseSchedule`): the collapse TempScale undoes is a long-text effect, and
on short windows a lower τ raises the mean pairwise cosine on every corpus measured (docs/results.md).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tempscale_index.schedules import ConstantSchedule, PiecewiseSchedule, Schedule

if TYPE_CHECKING:
    from tempscale_index.embedding import TempScaleEmbedding

logger = logging.getLogger(__name__)

SAMPLE_SIZE = 96  # chunks; two halves each, embedded at each candidate τ ≈ 200 chunk forward passes in all
CANDIDATE_TAU = 0.8  # the paper's τ; the one alternative tested against τ = 1
SHORT_TOKENS = 128  # chunks of at most this many tokens keep τ = 1
MIN_HALF_TOKENS = 16  # a chunk needs two halves of at least this many tokens to be sampled
MIN_SAMPLE = 24  # fewer usable chunks than this: too little evidence, τ = 1
MIN_GROUPS = 8  # fewer source documents than this: the interval over documents means little, τ = 1
N_BOOTSTRAP = 2000
CONFIDENCE = 0.95  # two-sided; a 90% interval chose τ = 0.8 for MPNet on 8 privacy policies, where it loses


@dataclass(frozen=True)
class Selection:
    """The chosen document schedule, one sentence saying why, and the measurements behind it."""

    schedule: Schedule
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schedule": self.schedule.to_dict(), "reason": self.reason, "evidence": self.evidence}


def select_document_schedule(
    embedding: TempScaleEmbedding,
    texts: Sequence[str],
    groups: Sequence[str] | None = None,
    *,
    seed: int = 0,
) -> Selection:
    """Choose τ = 1 or a length-dependent τ < 1 for ``texts`` (chunks as they will be embedded).

    ``groups`` names each text's source document (None: each text is its own); the bootstrap resamples
    documents, since chunks of one document are not independent evidence. Deterministic for the same inputs.
    """
    if groups is not None and len(groups) != len(texts):
        raise ValueError(f"groups must name one document per text: {len(groups)} groups for {len(texts)} texts")
    halves, sample_groups = _sample_halves(embedding, texts, groups, seed)
    n_groups = len(set(sample_groups))
    evidence: dict[str, Any] = {
        "method": "half-chunk discrimination",
        "n_texts": len(texts),
        "n_sampled": len(halves),
        "n_documents": n_groups,
        "candidate_tau": CANDIDATE_TAU,
    }
    if len(halves) < MIN_SAMPLE or n_groups < MIN_GROUPS:
        reason = f"τ = 1: only {len(halves)} usable chunks from {n_groups} documents, too few to decide"
        return _selected(ConstantSchedule(1.0), reason, evidence)
    baseline = _discrimination(embedding, halves, 1.0)
    candidate = _discrimination(embedding, halves, CANDIDATE_TAU)
    gain = candidate - baseline
    low, high = _group_bootstrap(gain, sample_groups, seed)
    evidence.update(
        discrimination_tau_1=float(baseline.mean()),
        discrimination_candidate=float(candidate.mean()),
        gain=float(gain.mean()),
        gain_interval=[low, high],
        confidence=CONFIDENCE,
    )
    if low > 0:
        schedule = PiecewiseSchedule([SHORT_TOKENS], [1.0, CANDIDATE_TAU])
        reason = (
            f"τ = {CANDIDATE_TAU} above {SHORT_TOKENS} tokens: halves of the same chunk stand out more "
            f"(gain {gain.mean():+.3f} SD, {CONFIDENCE:.0%} interval [{low:+.3f}, {high:+.3f}])"
        )
        return _selected(schedule, reason, evidence)
    reason = (
        f"τ = 1: τ = {CANDIDATE_TAU} does not separate this corpus's texts better "
        f"(gain {gain.mean():+.3f} SD, {CONFIDENCE:.0%} interval [{low:+.3f}, {high:+.3f}])"
    )
    return _selected(ConstantSchedule(1.0), reason, evidence)


def _selected(schedule: Schedule, reason: str, evidence: dict[str, Any]) -> Selection:
    logger.info("document τ schedule: %s — %s", schedule.to_dict(), reason)
    return Selection(schedule, reason, evidence)


def _sample_halves(
    embedding: TempScaleEmbedding, texts: Sequence[str], groups: Sequence[str] | None, seed: int
) -> tuple[list[tuple[str, str]], list[str]]:
    """A deterministic sample of up to ``SAMPLE_SIZE`` chunks, each cut at its middle token into two halves."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    tokenizer = embedding.tokenizer
    halves: list[tuple[str, str]] = []
    sample_groups: list[str] = []
    for index in order:
        if len(halves) == SAMPLE_SIZE:
            break
        text = texts[index]
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        spans = offsets["offset_mapping"][: embedding.max_length]
        if len(spans) < 2 * MIN_HALF_TOKENS:
            continue
        middle = len(spans) // 2
        halves.append((text[: spans[middle - 1][1]], text[spans[middle][0] : spans[-1][1]]))
        sample_groups.append(str(groups[index]) if groups is not None else f"text-{index}")
    return halves, sample_groups


def _discrimination(embedding: TempScaleEmbedding, halves: list[tuple[str, str]], tau: float) -> np.ndarray:
    """Per chunk: (cos(first, own second) − mean cos(first, other seconds)), in units of the SD of all
    first-to-other-second cosines at this τ (one pooled scale: a per-chunk SD from ~95 cosines adds noise)."""
    texts = [first for first, _ in halves] + [second for _, second in halves]
    vectors = embedding.encode(texts, "document", temperature_override=ConstantSchedule(tau)).embeddings
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    n = len(halves)
    similarities = vectors[:n] @ vectors[n:].T
    own = np.diag(similarities)
    others = similarities[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return (own - others.mean(axis=1)) / max(float(others.std()), 1e-6)


def _group_bootstrap(values: np.ndarray, groups: Sequence[str], seed: int) -> tuple[float, float]:
    """Percentile interval of the mean of ``values``, resampling whole groups (documents) with replacement."""
    names = sorted(set(groups))
    members = [np.flatnonzero(np.asarray(groups) == name) for name in names]
    sums = np.array([values[rows].sum() for rows in members])
    sizes = np.array([len(rows) for rows in members])
    draws = np.random.default_rng(seed).integers(0, len(names), size=(N_BOOTSTRAP, len(names)))
    means = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
