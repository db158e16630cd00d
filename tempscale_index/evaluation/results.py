"""What a retrieval evaluation measured, as plain data: per level, per query, averaged and per length bucket."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tempscale_index.evaluation.metrics import PerQuery
from tempscale_index.evaluation.stats import PairedComparison, paired_comparison

Level = Literal["document", "chunk"]
LEVELS: tuple[Level, ...] = ("document", "chunk")


def check_level(level: str) -> Level:
    """``level`` if it is one of :data:`LEVELS`, else a ValueError naming them."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return level  # type: ignore[return-value]


@dataclass
class LengthBucket:
    """Queries whose length (of their relevant document, or their own) falls in ``[low, high]`` tokens."""

    low: int
    high: int
    n_queries: int
    means: dict[str, float]
    query_ids: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}–{self.high}"


@dataclass
class LevelResult:
    """Metrics at one level: per query, averaged, and averaged per length bucket."""

    level: Level
    per_query: PerQuery
    means: dict[str, float]
    by_document_length: list[LengthBucket]
    by_query_length: list[LengthBucket]


@dataclass
class EvaluationResult:
    """Everything one evaluation measured; ``settings`` describes the configuration (τ schedules, chunking…)."""

    dataset: str
    n_documents: int
    n_queries: int
    n_chunks: int | None
    length_unit: str
    levels: dict[str, LevelResult]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        levels = {
            name: LevelResult(
                level=level["level"],
                per_query=level["per_query"],
                means=level["means"],
                by_document_length=[LengthBucket(**bucket) for bucket in level["by_document_length"]],
                by_query_length=[LengthBucket(**bucket) for bucket in level["by_query_length"]],
            )
            for name, level in data["levels"].items()
        }
        return cls(**{**data, "levels": levels})


def compare_results(
    baseline: EvaluationResult, candidate: EvaluationResult, n_resamples: int = 10000, seed: int = 0
) -> dict[str, list[PairedComparison]]:
    """Per level and measure, the candidate against the baseline (differences are candidate − baseline)."""
    return {
        level: [
            paired_comparison(baseline.levels[level].per_query, result.per_query, measure, n_resamples, seed)
            for measure in result.means
            if measure in baseline.levels[level].means
        ]
        for level, result in candidate.levels.items()
        if level in baseline.levels
    }
