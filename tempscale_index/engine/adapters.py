"""Per-architecture knowledge: where a model's attention logits can be divided by τ.

Dividing the query by τ divides ``Q·Kᵀ·scale`` by τ for every attention implementation (eager, SDPA, flash),
and rotary position embeddings are linear in the query, so scaling before or after them is the same. What the
query cannot carry is an additive position bias (T5 and MPNet relative buckets): those adapters also divide the
bias. Padding and causal masks are -inf (or the dtype minimum) where they matter, so dividing them is a no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from torch import nn

BiasKind = Literal["none", "t5", "mpnet"]


@dataclass(frozen=True)
class Adapter:
    """Where one family of models computes its queries and position bias."""

    family: str
    model_types: tuple[str, ...]
    query_module: str
    """Regex matched against the end of a module's qualified name; its output holds the queries."""
    query_parts: int = 1
    """1 when the module outputs queries only; 3 for a fused QKV projection whose first third is Q."""
    bias: BiasKind = "none"
    bias_module: str | None = None
    """Regex for the attention modules that receive the position bias (``bias`` != "none")."""

    def query_modules(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        return _matching(model, self.query_module)

    def bias_modules(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        return _matching(model, self.bias_module) if self.bias_module else []


def _matching(model: nn.Module, pattern: str) -> list[tuple[str, nn.Module]]:
    regex = re.compile(rf"(^|\.){pattern}$")
    return [(name, module) for name, module in model.named_modules() if regex.search(name)]


ADAPTERS: tuple[Adapter, ...] = (
    Adapter("BERT", ("bert", "roberta", "xlm-roberta", "camembert", "electra"), r"attention\.self\.query"),
    Adapter("DistilBERT", ("distilbert",), r"attention\.q_lin"),
    Adapter("MPNet", ("mpnet",), r"attention\.attn\.q", bias="mpnet", bias_module=r"attention\.attn"),
    Adapter("T5 encoder", ("t5", "mt5", "umt5"), r"SelfAttention\.q", bias="t5", bias_module=r"SelfAttention"),
    Adapter("ModernBERT", ("modernbert",), r"attn\.Wqkv", query_parts=3),
    Adapter("Qwen3", ("qwen3",), r"self_attn\.q_norm"),
    Adapter("Llama-style decoder", ("mistral", "qwen2", "llama"), r"self_attn\.q_proj"),
)


def supported_families() -> str:
    return ", ".join(f"{a.family} ({'/'.join(a.model_types)})" for a in ADAPTERS)


class UnsupportedArchitectureError(ValueError):
    """Raised for a model whose attention TempScale does not know how to reach."""


def adapter_for(model: nn.Module) -> Adapter:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedArchitectureError(
        f"TempScale does not support model_type={model_type!r} ({type(model).__name__}). "
        f"Supported families: {supported_families()}."
    )
