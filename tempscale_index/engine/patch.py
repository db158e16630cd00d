"""Put TempScale into a loaded transformers model with forward hooks.

``apply_tempscale(model)`` registers hooks once; ``temperature(taus)`` sets the per-text τ for the forward
passes run inside it. τ lives in a ``ContextVar``, so concurrent threads and asyncio tasks sharing one model each
see their own τ, and outside any ``temperature`` block the model behaves exactly as if unpatched. The model keeps
its own attention implementation (SDPA stays SDPA): only the query and the position bias are rescaled.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from tempscale_index.engine.adapters import Adapter, adapter_for, supported_families

# 1/τ per text in the batch being run, shape (batch,), or None for τ = 1 everywhere.
_INVERSE_TAU: ContextVar[torch.Tensor | None] = ContextVar("tempscale_inverse_tau", default=None)

_PATCH_ATTRIBUTE = "_tempscale_patch"


class TempScaleNotAppliedError(RuntimeError):
    """Raised when a patched model does not react to τ: a silent no-op is never acceptable."""


@contextmanager
def temperature(taus: float | Sequence[float] | torch.Tensor) -> Iterator[None]:
    """Run the forward passes inside this block at the given τ (one float, or one per text in the batch)."""
    values = torch.as_tensor(taus, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(values).all() or (values <= 0).any():
        bad = [float(v) for v in values if not (torch.isfinite(v) and v > 0)]
        raise ValueError(f"temperature must be positive and finite, got {bad[:5]}")
    inverse = None if bool((values == 1.0).all()) else (1.0 / values)
    token = _INVERSE_TAU.set(inverse)
    try:
        yield
    finally:
        _INVERSE_TAU.reset(token)


@contextmanager
def traced_temperature(inverse: torch.Tensor) -> Iterator[None]:
    """Run with 1/τ per row taken from a tensor as is (no checks, no τ = 1 shortcut), so that an exporter can
    trace it as a graph input."""
    token = _INVERSE_TAU.set(inverse)
    try:
        yield
    finally:
        _INVERSE_TAU.reset(token)


def _per_row(inverse: torch.Tensor, like: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """Reshape 1/τ to (batch, 1, …) so that it broadcasts over ``like``, whose batch is ``batch`` or its
    first dimension (a position bias shared by the batch has a batch dimension of 1)."""
    batch = like.shape[0] if batch is None else batch
    if inverse.numel() == 1:
        inverse = inverse.expand(batch)
    elif inverse.numel() != batch:
        raise ValueError(
            f"temperature() was given {inverse.numel()} τ values for a batch of {batch} texts; "
            "give one τ per text (or a single τ). Flattened/unpadded batches are not supported."
        )
    return inverse.to(device=like.device, dtype=like.dtype).view(batch, *([1] * (like.dim() - 1)))


def _scale_queries(parts: int):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        inverse = _INVERSE_TAU.get()
        if inverse is None:
            return None
        factor = _per_row(inverse, output)
        if parts == 1:
            return output * factor
        width = output.shape[-1] // parts
        query, rest = output[..., :width], output[..., width:]
        return torch.cat([query * factor, rest], dim=-1)

    return hook


def _scale_mpnet_bias(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    # MPNetAttention calls its self-attention as attn(hidden_states, attention_mask, position_bias, ...).
    inverse = _INVERSE_TAU.get()
    if inverse is None:
        return None
    if len(args) >= 3 and args[2] is not None:
        args = (*args[:2], args[2] * _per_row(inverse, args[2]), *args[3:])
    elif kwargs.get("position_bias") is not None:
        bias = kwargs["position_bias"]
        kwargs = {**kwargs, "position_bias": bias * _per_row(inverse, bias, len(args[0]))}
    return args, kwargs


@dataclass
class _T5BiasHooks:
    """T5 computes its bias in the first layer and hands the *returned* bias to every later layer, so each
    layer divides a copy on the way in and hands the undivided bias on, to avoid dividing it twice."""

    pending: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)

    def before(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        inverse = _INVERSE_TAU.get()
        if inverse is None:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        bias = kwargs.get("position_bias")
        if bias is None:
            if not module.has_relative_attention_bias:
                return None  # no bias at all in this layer: T5 adds zeros
            length = hidden.shape[1]
            bias = module.compute_bias(length, length, device=hidden.device)
        self.pending[(threading.get_ident(), id(module))] = bias
        return args, {**kwargs, "position_bias": bias * _per_row(inverse, bias, len(hidden))}

    def after(self, module: nn.Module, args: tuple, output: Any) -> Any:
        original = self.pending.pop((threading.get_ident(), id(module)), None)
        if original is None:
            return None
        return (output[0], original, *output[2:])


@dataclass
class TempScalePatch:
    """Handle on a patched model: which family matched and the hooks to remove."""

    adapter: Adapter
    handles: list[RemovableHandle]
    num_query_modules: int

    def remove(self, model: nn.Module) -> None:
        for handle in self.handles:
            handle.remove()
        if getattr(model, _PATCH_ATTRIBUTE, None) is self:
            delattr(model, _PATCH_ATTRIBUTE)


def apply_tempscale(model: nn.Module, verify: bool = True) -> TempScalePatch:
    """Register TempScale hooks on ``model`` (idempotent) and, by default, check that τ changes its output."""
    existing = getattr(model, _PATCH_ATTRIBUTE, None)
    if existing is not None:
        return existing
    adapter = adapter_for(model)
    queries = adapter.query_modules(model)
    expected_layers = _num_attention_layers(model)
    if not queries or (expected_layers and len(queries) < expected_layers):
        raise TempScaleNotAppliedError(
            f"found {len(queries)} query modules matching {adapter.query_module!r} in {type(model).__name__}, "
            f"expected {expected_layers}; this checkpoint's layout differs from the {adapter.family} adapter. "
            f"Supported families: {supported_families()}."
        )
    handles = [module.register_forward_hook(_scale_queries(adapter.query_parts)) for _, module in queries]
    bias_modules = adapter.bias_modules(model)
    if adapter.bias == "mpnet":
        handles += [m.register_forward_pre_hook(_scale_mpnet_bias, with_kwargs=True) for _, m in bias_modules]
    elif adapter.bias == "t5":
        t5 = _T5BiasHooks()
        for _, module in bias_modules:
            handles.append(module.register_forward_pre_hook(t5.before, with_kwargs=True))
            handles.append(module.register_forward_hook(t5.after))
    patch = TempScalePatch(adapter=adapter, handles=handles, num_query_modules=len(queries))
    setattr(model, _PATCH_ATTRIBUTE, patch)
    if verify:
        try:
            _verify_changes_output(model)
        except Exception:
            patch.remove(model)
            raise
    return patch


def _num_attention_layers(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)


@torch.inference_mode()
def _verify_changes_output(model: nn.Module) -> None:
    """Run a tiny probe at τ = 1 and τ = 0.5: a patch that changes nothing must fail loudly."""
    encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
    device = next(model.parameters()).device
    vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(min(5, vocab - 1), vocab, (1, 12), generator=generator).to(device)
    attention_mask = torch.ones_like(input_ids)
    was_training = model.training
    model.eval()
    try:
        plain = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        with temperature(0.5):
            scaled = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    finally:
        model.train(was_training)
    if not torch.isfinite(scaled).all() or torch.allclose(plain, scaled, atol=1e-7, rtol=0):
        raise TempScaleNotAppliedError(
            f"τ = 0.5 did not change the output of {type(model).__name__}: its attention does not go through "
            f"the {patch_family(model)} hooks. Supported families: {supported_families()}."
        )


def patch_family(model: nn.Module) -> str | None:
    patch = getattr(model, _PATCH_ATTRIBUTE, None)
    return patch.adapter.family if patch else None
