"""How one encode call is cut into forward passes on CPU worker threads."""

from __future__ import annotations

import numpy as np


def balanced_batches(order: np.ndarray, batch_size: int, workers: int) -> list[np.ndarray]:
    """``order`` (text positions, longest first) cut into batches of at most ``batch_size``, as many as a multiple
    of ``workers`` and of near-equal size, so that no worker runs a full batch alone while the others wait on a
    short one (36 texts in batches of 32 on 2 workers: 18 + 18, not 32 + 4, which took twice as long)."""
    count = -(-len(order) // batch_size)
    if workers > 1:
        count = min(len(order), -(-count // workers) * workers)
    return [batch for batch in np.array_split(order, count) if len(batch)] if count else []
