"""The straightforward TempScale, as the paper's code computes it: explicit attention logits, divided by τ,
then softmax. Slow and not thread-safe (it swaps ``torch.nn.functional.softmax`` while active); it exists to
check the hook engine against (tests) and to measure what the fast path saves (benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def eager_reference_temperature(model: nn.Module, taus: float | Sequence[float] | torch.Tensor) -> Iterator[None]:
    """Inside this block, every attention softmax of ``model`` (which must run eager attention) sees its
    logits divided by the τ of its batch row. Logits are (batch, heads, queries, keys)."""
    implementation = getattr(model.config, "_attn_implementation", "eager")
    if implementation != "eager":
        raise ValueError(f"the reference needs attn_implementation='eager', this model runs {implementation!r}")
    tau = torch.as_tensor(taus, dtype=torch.float64).reshape(-1)
    original_softmax = F.softmax

    def softmax_with_temperature(logits: torch.Tensor, dim: int = -1, *args, **kwargs) -> torch.Tensor:
        row_tau = tau.to(logits.device, logits.dtype)
        row_tau = row_tau.expand(logits.shape[0]) if row_tau.numel() == 1 else row_tau
        scaled = logits / row_tau.view(-1, *([1] * (logits.dim() - 1)))
        # A masked logit is the dtype minimum; dividing it by τ < 1 overflows to -inf, which turns fully masked
        # (padding) rows into NaN. Clamp back so such rows behave exactly as in the unscaled model.
        scaled = scaled.clamp(min=torch.finfo(logits.dtype).min)
        return original_softmax(scaled, dim, *args, **kwargs)

    F.softmax = softmax_with_temperature
    try:
        yield
    finally:
        F.softmax = original_softmax
