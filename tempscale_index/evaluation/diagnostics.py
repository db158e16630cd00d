"""Collapse diagnostics: how tightly a corpus's embeddings bunch together as its texts get longer.

The paper's Figure 1c: long texts collapse towards one region of the embedding space (higher mean pairwise
cosine, smaller distance to the centroid), and a lower τ spreads them out again. To compare lengths on the same
content, every corpus is measured on nested token windows: at each sampled position the window of 16 tokens is
a prefix of the window of 32 tokens, and so on, so only the length changes between buckets.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tempscale_index.chunking import chunk_token_budget
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.schedules import Schedule

DEFAULT_WINDOW_LENGTHS = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class BucketCollapse:
    """Spread of the embeddings of ``n_texts`` windows of ``length`` content tokens."""

    length: int
    n_texts: int
    mean_pairwise_cosine: float
    mean_distance_to_centroid: float


@dataclass(frozen=True)
class CollapseReport:
    """Collapse per window length, one curve per schedule (label -> buckets in increasing length)."""

    model_name: str
    curves: dict[str, list[BucketCollapse]]
    schedules: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "schedules": self.schedules,
            "curves": {label: [asdict(b) for b in buckets] for label, buckets in self.curves.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollapseReport:
        return cls(
            model_name=data["model_name"],
            schedules=dict(data["schedules"]),
            curves={label: [BucketCollapse(**b) for b in buckets] for label, buckets in data["curves"].items()},
        )

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def cosine_by_length(self, label: str) -> dict[int, float]:
        return {b.length: b.mean_pairwise_cosine for b in self.curves[label]}


def sample_nested_windows(
    texts: Sequence[str],
    embedding: TempScaleEmbedding,
    lengths: Sequence[int] = DEFAULT_WINDOW_LENGTHS,
    windows_per_length: int = 200,
    seed: int = 0,
) -> dict[int, list[str]]:
    """Windows of exactly ``length`` content tokens cut from ``texts``; shorter windows are prefixes of longer ones.

    A length beyond what the model sees in one pass (special tokens and instruction included) becomes that
    limit, the longest window a chunk can be: 256 becomes 254 for MiniLM.
    """
    budget = chunk_token_budget(embedding)
    if any(int(n) < 1 for n in lengths) or not lengths:
        raise ValueError(f"lengths must be positive token counts, got {list(lengths)}")
    lengths = sorted({min(int(n), budget) for n in lengths})
    if windows_per_length < 2:
        raise ValueError(f"windows_per_length must be at least 2 to measure pairwise cosine, got {windows_per_length}")
    tokenizer = embedding.tokenizer
    offsets = [
        tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
        for text in texts
    ]
    rng = random.Random(seed)
    candidates = [i for i, spans in enumerate(offsets) if len(spans) >= lengths[0]]
    if not candidates:
        raise ValueError(f"no text has {lengths[0]} tokens or more; nothing to measure")
    windows: dict[int, list[str]] = {n: [] for n in lengths}
    for _ in range(windows_per_length):
        index = rng.choice(candidates)
        spans, text = offsets[index], texts[index]
        longest = max(n for n in lengths if n <= len(spans))
        start = rng.randrange(0, len(spans) - longest + 1)
        for n in lengths:
            if n <= longest:
                windows[n].append(text[spans[start][0] : spans[start + n - 1][1]])
    return {n: found for n, found in windows.items() if len(found) >= 2}


def spread(vectors: np.ndarray) -> tuple[float, float]:
    """Mean pairwise cosine (over distinct pairs) and mean Euclidean distance to the centroid of unit vectors."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    n = len(unit)
    total = unit.sum(axis=0)
    mean_cosine = (float(total @ total) - n) / (n * (n - 1))
    distance = float(np.linalg.norm(unit - total / n, axis=1).mean())
    return mean_cosine, distance


def measure_collapse(
    embedding: TempScaleEmbedding,
    windows: Mapping[int, Sequence[str]],
    schedules: Mapping[str, Schedule],
    show_progress: bool = False,
) -> CollapseReport:
    """Embed every window under each schedule and measure its spread per length."""
    lengths = sorted(windows)
    texts = [text for n in lengths for text in windows[n]]
    bounds = np.cumsum([0] + [len(windows[n]) for n in lengths])
    curves: dict[str, list[BucketCollapse]] = {}
    for label, schedule in tqdm(schedules.items(), desc="Collapse", unit="schedule", disable=not show_progress):
        vectors = embedding.encode(texts, "document", temperature_override=schedule).embeddings
        curves[label] = [
            BucketCollapse(n, int(bounds[i + 1] - bounds[i]), *spread(vectors[bounds[i] : bounds[i + 1]]))
            for i, n in enumerate(lengths)
        ]
    return CollapseReport(
        model_name=embedding.model_name,
        curves=curves,
        schedules={label: schedule.to_dict() for label, schedule in schedules.items()},
    )


def plot_collapse(report: CollapseReport, path: str | Path, title: str | None = None) -> Path:
    """Two panels (mean pairwise cosine, distance to centroid) against window length, one line per schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cosine_axis, distance_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for label, buckets in report.curves.items():
        lengths = [b.length for b in buckets]
        cosine_axis.plot(lengths, [b.mean_pairwise_cosine for b in buckets], marker="o", label=label)
        distance_axis.plot(lengths, [b.mean_distance_to_centroid for b in buckets], marker="o", label=label)
    for axis, name in ((cosine_axis, "mean pairwise cosine"), (distance_axis, "mean distance to centroid")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("window length (tokens)")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    cosine_axis.legend(fontsize=8)
    figure.suptitle(title or f"Embedding collapse by length ({report.model_name})")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def collapse_markdown(report: CollapseReport) -> str:
    """A Markdown table: one row per window length, mean pairwise cosine (distance to centroid) per schedule."""
    labels = list(report.curves)
    header = ["tokens", *(f"τ {label}: cosine (distance)" for label in labels)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in zip(*(report.curves[label] for label in labels)):
        cells = [f"{b.mean_pairwise_cosine:.4f} ({b.mean_distance_to_centroid:.4f})" for b in row]
        lines.append(f"| {row[0].length} (n={row[0].n_texts}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)
