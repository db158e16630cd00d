"""Run a TempScale-patched encoder under ONNX Runtime, with 1/τ per text as a graph input.

Why: a short query's forward pass is dominated by small matrix products, which ONNX Runtime's CPU kernels run
about 2.5× faster than eager PyTorch on a 2-core machine (``benchmarks/bench_query.py``). The graph is traced
from the patched model itself, so the τ math is the engine's, not a second implementation; it is checked
against the PyTorch model on a probe batch with mixed τ every time a session is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tempscale_index.engine.patch import _INVERSE_TAU, TempScaleNotAppliedError, temperature

INVERSE_TAU_INPUT = "inverse_temperature"
CANDIDATE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PROBE_TOLERANCE = 1e-3


class OnnxBackendError(RuntimeError):
    """The model cannot run under ONNX Runtime (not installed, not exportable, or outputs disagree)."""


def default_cache_dir() -> Path:
    """Where exported graphs are kept: ``$TEMPSCALE_INDEX_CACHE`` or ``~/.cache/tempscale-index``."""
    root = os.environ.get("TEMPSCALE_INDEX_CACHE") or Path.home() / ".cache" / "tempscale-index"
    return Path(root) / "onnx"


class _WithTemperature(nn.Module):
    """The encoder with 1/τ as its last positional input, returning the token embeddings."""

    def __init__(self, encoder: nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *tensors, inverse = inputs
        token = _INVERSE_TAU.set(inverse)
        try:
            return self.encoder(**dict(zip(self.input_names, tensors))).last_hidden_state
        finally:
            _INVERSE_TAU.reset(token)


class OnnxEncoder:
    """An ONNX Runtime session standing in for ``encoder(**features).last_hidden_state`` at per-text τ."""

    def __init__(self, encoder: nn.Module, weights_sha256: str, cache_dir: Path | None = None,
                 threads: int | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise OnnxBackendError(
                "backend='onnx' needs onnxruntime: pip install 'tempscale-index[onnx]'"
            ) from exc
        if next(encoder.parameters()).device.type != "cpu":
            raise OnnxBackendError("backend='onnx' runs on CPU; load the model with device='cpu'")
        accepted = inspect.signature(encoder.forward).parameters
        self.input_names = [name for name in CANDIDATE_INPUTS if name in accepted]
        self.path = _exported_graph(encoder, self.input_names, weights_sha256, cache_dir or default_cache_dir())
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception:  # a damaged cache file (onnxruntime raises its own exception types): export again
            self.path.unlink(missing_ok=True)
            self.path = _exported_graph(encoder, self.input_names, weights_sha256, self.path.parent)
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._check_against(encoder)

    def __call__(self, features: dict[str, torch.Tensor], taus: Sequence[float]) -> torch.Tensor:
        feed = {name: features[name].cpu().numpy().astype(np.int64) for name in self.input_names
                if name in features}
        batch = len(features["input_ids"])
        if "token_type_ids" in self.input_names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        feed[INVERSE_TAU_INPUT] = (1.0 / np.broadcast_to(np.asarray(taus, dtype=np.float64), (batch,))).astype(
            np.float32
        )
        (hidden,) = self.session.run(None, feed)
        return torch.from_numpy(hidden)

    def _check_against(self, encoder: nn.Module) -> None:
        """Same token embeddings as the PyTorch model on a padded batch mixing τ, or refuse."""
        generator = torch.Generator().manual_seed(0)
        vocab = int(getattr(encoder.config, "vocab_size", 100) or 100)
        input_ids = torch.randint(min(5, vocab - 1), vocab, (3, 19), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[1, 11:] = 0
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        taus = [1.0, 0.5, 0.8]
        with torch.inference_mode(), temperature(taus):
            expected = encoder(**features).last_hidden_state
        got = self(features, taus)
        valid = attention_mask.bool()
        error = float((expected[valid] - got[valid]).abs().max())
        if not error <= PROBE_TOLERANCE:
            raise TempScaleNotAppliedError(
                f"the ONNX graph of {type(encoder).__name__} differs from the PyTorch model by {error:.2e} "
                f"(tolerance {PROBE_TOLERANCE}); use backend='torch'. Graph: {self.path}"
            )


def _exported_graph(encoder: nn.Module, input_names: list[str], weights_sha256: str, cache_dir: Path) -> Path:
    """The cached graph for these weights and library versions, exported (atomically) on first use."""
    import transformers

    key = hashlib.sha256(
        f"{weights_sha256}|{type(encoder).__name__}|{input_names}|{torch.__version__}|{transformers.__version__}"
        .encode()
    ).hexdigest()[:24]
    path = cache_dir / f"{type(encoder).__name__}-{key}.onnx"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    wrapper = _WithTemperature(encoder, input_names).eval()
    # a padded row, so that no "mask is all ones" shortcut is traced into the graph
    example = {name: torch.ones(2, 8, dtype=torch.long) for name in input_names}
    example["attention_mask"][1, 5:] = 0
    example_inputs = (*example.values(), torch.ones(2))
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    shapes = ((*({0: batch, 1: tokens} for _ in input_names), {0: batch}),)  # forward(*inputs) is one argument
    handle, temporary = tempfile.mkstemp(dir=cache_dir, suffix=".onnx.partial")
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, example_inputs, temporary, input_names=[*input_names, INVERSE_TAU_INPUT],
                              output_names=["token_embeddings"], dynamic_shapes=shapes, dynamo=True,
                              external_data=False)
        os.replace(temporary, path)
    except Exception as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OnnxBackendError(f"could not export {type(encoder).__name__} to ONNX ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); use backend='torch'") from exc
    return path
