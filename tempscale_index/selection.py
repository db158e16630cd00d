"""Unsupervised choice of the document τ schedule from a sample of a corpus's own texts (no queries, no labels).

Retrieval needs a text to stay closer to text about the same thing than to everything else. The selector
measures exactly that where the schedule acts: neighbouring full-length chunks of one document (or, for a whole
document, its first window and the next), each embedded at the τ the candidate schedule would give it. Each text
probes, as a query would, with a query-sized piece of itself (its middle ``PROBE_TOKENS`` tokens, embedded as a
query) for its neighbour among the sampled texts at the candidate τ; its *discrimination* is how far, in standard
deviations of the probe's similarities to other documents' texts, the neighbour stands out. A short probe, not
the whole text: whole texts probing whole texts measured a gain with MPNet on meetings (0.7, bound +0.017 SD)
where retrieval by questions lost (−1.95% at chunk level); the short probe sees no gain there (+0.016 SD,
[−0.025, +0.057]) and a larger one where questions gain (MiniLM on meetings, +0.066 against +0.052 SD).

The candidates 0.8 and 0.7 are tested in that fixed sequence (one qualifies when its mean paired
gain over τ = 1 has a one-sided bootstrap lower bound above zero, resampling documents, and every milder one
qualified), which keeps the family-wise error at ``ALPHA`` without splitting it over candidates; it is split over
the planned looks. Of those qualifying, the one with the largest mean gain is chosen. The sample keeps growing
while the candidate with the largest mean gain is undecided: the milder τ, whose gain is the less noisy, is
often clear first. Two candidates, not three: every text costs one embedding per candidate, one at τ = 1 and a
short probe, so at a fixed budget a third candidate (0.9, whose gain in nDCG is about half of 0.8's and never
significant in docs/results.md) shrinks the sample by a quarter; on 2,271 QMSum chunks that was the difference
between 0.8 and 0.7 (+5.25% against +7.97%).

The sample is ranked by a content key (``selection_sample``), so the answer is the same for any order of the
corpus and in any process. It grows (96 → 192 → 384 … texts) until the intervals exclude zero either way or the
cost cap is hit: 0.08 embeddings per chunk of the corpus (ingest embeds each chunk once; the short probes ride
on that budget, measured in benchmarks/bench_selector.py), with a floor for small corpora (1,536 embeddings for
a handful of chunks, tapering to that budget at 2,000 chunks). Too little to go on (fewer than ``MIN_SAMPLE``
texts or ``MIN_GROUPS`` documents) is *pending*, not an answer: the schedule is τ = 1 for now and
``Selection.pending`` says so.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tempscale_index.schedules import ConstantSchedule, PiecewiseSchedule, Schedule
from tempscale_index.selection_sample import SHORT_TOKENS, Block, document_groups, probe_piece, ranked_blocks

if TYPE_CHECKING:
    from tempscale_index.embedding import Kind, TempScaleEmbedding

logger = logging.getLogger(__name__)

CANDIDATE_TAUS = (0.8, 0.7)  # each tested against τ = 1 above SHORT_TOKENS tokens
FIRST_STEP = 96  # texts embedded at the first look; doubled at each later one, up to the cap
COST_FRACTION = 0.08  # embeddings per chunk; a selector embedding costs about one ingested chunk (bench_selector)
TARGET_CHUNKS = 2000  # the ≤ 10%-of-ingest target binds from this corpus size
FLOOR_EMBEDDINGS = 1536  # a corpus of a few chunks may spend this (512 texts), tapering to the budget at TARGET_CHUNKS
MAX_SAMPLE = 3072  # texts: the similarity matrices stay small (the cap reaches this at ~170,000 chunks)
MIN_SAMPLE = 24  # fewer usable texts than this: too little evidence, pending
MIN_GROUPS = 8  # fewer source documents than this: the interval over documents means little, pending
N_BOOTSTRAP = 10000
ALPHA = 0.05  # family-wise, one-sided: split over the planned looks; candidates are tested in a fixed sequence

__all__ = ["CANDIDATE_TAUS", "SHORT_TOKENS", "Selection", "cost_cap", "select_document_schedule"]


@dataclass(frozen=True)
class Selection:
    """The chosen document schedule, one sentence saying why, and the measurements behind it. ``pending``: too
    little evidence to decide; the schedule (τ = 1) is provisional."""

    schedule: Schedule
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    pending: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule.to_dict(),
            "reason": self.reason,
            "evidence": self.evidence,
            "pending": self.pending,
        }


def cost_cap(n_chunks: int) -> int:
    """Embeddings the selector may spend on a corpus of ``n_chunks`` chunks: ``COST_FRACTION`` of one per chunk,
    below ``TARGET_CHUNKS`` (corpora whose ingest takes a minute or two, and whose few documents carry little
    evidence each) from ``FLOOR_EMBEDDINGS`` down to that budget linearly, so one chunk more never changes it much."""
    budget = COST_FRACTION * max(n_chunks, TARGET_CHUNKS)
    return int(budget + (FLOOR_EMBEDDINGS - budget) * max(0.0, 1 - n_chunks / TARGET_CHUNKS))


def select_document_schedule(
    embedding: TempScaleEmbedding,
    texts: Sequence[str],
    groups: Sequence[str] | None = None,
    *,
    seed: int = 0,
    max_embeddings: int | None = None,
) -> Selection:
    """Choose τ = 1 or a length-dependent τ < 1 for ``texts`` (chunks as they will be embedded).

    ``groups`` names each text's source document (None: each text is its own, whole document); a document's
    texts are taken in the order given (its reading order). The bootstrap resamples documents, since texts of
    one document are not independent evidence; ``seed`` seeds it. ``max_embeddings`` overrides the cost cap.
    Deterministic, and the same for any order of the documents.
    """
    if groups is not None and len(groups) != len(texts):
        raise ValueError(f"groups must name one document per text: {len(groups)} groups for {len(texts)} texts")
    names = document_groups(texts, groups)
    budget = cost_cap(len(texts)) if max_embeddings is None else max_embeddings
    cap = min(MAX_SAMPLE, budget // (1 + len(CANDIDATE_TAUS)))
    steps = _steps(cap)
    alpha = ALPHA / len(steps)  # one-sided, per look
    evidence: dict[str, Any] = {
        "method": "neighbour discrimination",
        "n_texts": len(texts),
        "n_documents_given": len(set(names)),
        "cap_texts": cap,
        "candidate_taus": list(CANDIDATE_TAUS),
        "confidence": 1 - alpha,
        "test": "one-sided lower bound; candidates in fixed sequence " + " → ".join(map(str, CANDIDATE_TAUS)),
    }
    sample = _Sample(embedding)
    blocks = ranked_blocks(embedding, texts, names)
    rows: list[dict[str, Any]] = []
    for look, step in enumerate(steps, start=1):
        if not sample.fill(blocks, step) and rows:  # no more usable texts: nothing new to see
            break
        evidence.update(n_sampled=sample.size, n_documents=len(set(sample.groups)), looks=look)
        if sample.size < MIN_SAMPLE or len(set(sample.groups)) < MIN_GROUPS:
            if sample.exhausted or step == steps[-1]:
                reason = (
                    f"auto pending (τ = 1 for now): only {sample.size} usable texts from "
                    f"{len(set(sample.groups))} documents, too few to decide"
                )
                return _selected(ConstantSchedule(1.0), reason, evidence, pending=True)
            continue
        sample.embed()
        gains, rows = sample.gains(seed, 2 * alpha)  # a two-sided 1 − 2α interval: its lower bound is one-sided α
        evidence["candidates"] = rows
        evidence["n_pairs"] = len(gains)
        if max(rows, key=lambda row: row["gain"]) in _qualified(rows):
            break  # the largest gain is clearly above zero: a larger sample could not choose better
        if all(row["interval"][1] < 0 for row in rows):
            reason = f"τ = 1: every candidate τ separates this corpus's texts worse ({_summary(rows)})"
            return _selected(ConstantSchedule(1.0), reason, evidence)
    better = _qualified(rows)
    if better:  # the largest gain among those clearly above zero, from the largest sample the budget allowed
        best = max(better, key=lambda row: row["gain"])
        schedule = PiecewiseSchedule([SHORT_TOKENS], [1.0, best["tau"]])
        reason = (
            f"τ = {best['tau']} above {SHORT_TOKENS} tokens: neighbouring texts of a document stand out more "
            f"(gain {best['gain']:+.3f} SD, {1 - 2 * alpha:.2%} interval {_interval(best)}, "
            f"{sample.size} texts sampled)"
        )
        return _selected(schedule, reason, evidence)
    reason = f"τ = 1: no candidate τ separates this corpus's texts clearly better ({_summary(rows)})"
    return _selected(ConstantSchedule(1.0), reason, evidence)


def _qualified(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates (mildest first) whose lower bound is above zero, each after every milder one: the fixed
    sequence of tests, which a non-monotone corpus (0.7 clear, 0.8 not) stops at the first undecided τ."""
    return list(itertools.takewhile(lambda row: row["interval"][0] > 0, rows))


def _steps(cap: int) -> list[int]:
    """Sample sizes of the planned looks: FIRST_STEP doubled until the cap, the cap last."""
    steps = []
    size = FIRST_STEP
    while size < cap:
        steps.append(size)
        size *= 2
    return [*steps, cap]


def _interval(row: dict[str, Any]) -> str:
    low, high = row["interval"]
    return f"[{low:+.3f}, {high:+.3f}]"


def _summary(rows: list[dict[str, Any]]) -> str:
    return "; ".join(f"τ {row['tau']}: {row['gain']:+.3f} SD {_interval(row)}" for row in rows)


def _selected(schedule: Schedule, reason: str, evidence: dict[str, Any], pending: bool = False) -> Selection:
    logger.info("document τ schedule: %s — %s", schedule.to_dict(), reason)
    return Selection(schedule, reason, evidence, pending)


class _Sample:
    """The texts sampled so far, each embedded once at τ = 1 and once per candidate τ, and its probe once."""

    def __init__(self, embedding: TempScaleEmbedding) -> None:
        self.embedding = embedding
        self.texts: list[str] = []
        self.groups: list[str] = []
        self.pairs: list[tuple[int, int]] = []  # (probe, neighbour), both directions
        self.vectors: dict[float, np.ndarray] = {}
        self.probes = np.zeros((0, 0), dtype=np.float32)  # each text's probe_piece, embedded as a query
        self.exhausted = False

    @property
    def size(self) -> int:
        return len(self.texts)

    def fill(self, blocks: Any, target: int) -> bool:
        """Add blocks (the last one trimmed to fit) until ``target`` texts. False if none was added."""
        start = self.size
        while target - self.size >= 2 and not self.exhausted:
            block: Block | None = next(blocks, None)
            if block is None:
                self.exhausted = True
                break
            self._add(block.texts[: target - self.size], block.group)
        return self.size > start

    def embed(self) -> None:
        """Embed the texts added since the last call, once at τ = 1 and once per candidate τ, and their probes."""
        for tau in (1.0, *CANDIDATE_TAUS):
            done = self.vectors.get(tau, np.zeros((0, 0), dtype=np.float32))
            schedule = PiecewiseSchedule([SHORT_TOKENS], [1.0, tau])  # the τ each text would actually get
            self.vectors[tau] = self._extended(done, self.texts[len(done) :], "document", schedule)
        pieces = [probe_piece(self.embedding, text) for text in self.texts[len(self.probes) :]]
        self.probes = self._extended(self.probes, pieces, "query", self.embedding.schedule_for("query"))

    def _extended(self, done: np.ndarray, texts: list[str], kind: Kind, schedule: Schedule) -> np.ndarray:
        """``done`` with the unit vectors of ``texts`` appended."""
        if not texts:
            return done
        encoded = self.embedding.encode(texts, kind, temperature_override=schedule).embeddings
        vectors = encoded / np.linalg.norm(encoded, axis=1, keepdims=True).clip(min=1e-12)
        return np.vstack([done, vectors]) if len(done) else vectors

    def _add(self, texts: Sequence[str], group: str) -> None:
        first = self.size
        self.texts.extend(texts)
        self.groups.extend([group] * len(texts))
        for position in range(first, first + len(texts) - 1):
            self.pairs.extend([(position, position + 1), (position + 1, position)])

    def gains(self, seed: int, alpha: float) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Per pair and candidate, discrimination gain over τ = 1; per candidate, its mean and interval."""
        groups = np.asarray(self.groups)
        other = groups[:, None] != groups[None, :]
        probes = np.array([probe for probe, _ in self.pairs])
        targets = np.array([target for _, target in self.pairs])
        baseline = self._discrimination(self.vectors[1.0], other, probes, targets)
        gains = np.stack(
            [self._discrimination(self.vectors[tau], other, probes, targets) - baseline for tau in CANDIDATE_TAUS],
            axis=1,
        )
        intervals = _group_bootstrap(gains, groups[probes], seed, alpha)
        rows = [
            {"tau": tau, "gain": float(gains[:, k].mean()), "interval": intervals[k]}
            for k, tau in enumerate(CANDIDATE_TAUS)
        ]
        return gains, rows

    def _discrimination(
        self, at_tau: np.ndarray, other: np.ndarray, probes: np.ndarray, targets: np.ndarray
    ) -> np.ndarray:
        """Per pair: (cos(probe, neighbour at τ) − mean cos(probe, other documents' texts at τ)), in units of the
        SD of all cross-document cosines at this τ (one pooled scale: a per-text SD adds noise)."""
        similarities = self.probes @ at_tau.T
        counts = other.sum(axis=1).clip(min=1)
        background = (similarities * other).sum(axis=1) / counts
        scale = max(float(similarities[other].std()), 1e-6)
        return (similarities[probes, targets] - background[probes]) / scale


def _group_bootstrap(values: np.ndarray, groups: np.ndarray, seed: int, alpha: float) -> list[list[float]]:
    """Per column of ``values``: percentile interval of the mean, resampling whole groups (documents); the same
    draws for every column, so the candidates are compared on the same resamples."""
    names = sorted(set(groups.tolist()))
    members = [np.flatnonzero(groups == name) for name in names]
    sums = np.stack([values[rows].sum(axis=0) for rows in members])
    sizes = np.array([len(rows) for rows in members])
    draws = np.random.default_rng(seed).integers(0, len(names), size=(N_BOOTSTRAP, len(names)))
    means = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)[:, None]
    low, high = np.percentile(means, [alpha / 2 * 100, (1 - alpha / 2) * 100], axis=0)
    return [[float(a), float(b)] for a, b in zip(low, high)]
