"""Run a TempScale-patched encoder under ONNX Runtime, with 1/τ per text as a graph input.

Why: a short query's forward pass is dominated by small matrix products, which ONNX Runtime's CPU kernels run
1.7–2.7× faster than eager PyTorch on a 2-core machine (``benchmarks/bench_query.py``). The graph is exported
(torch.export) from the patched model itself, so the τ math is the engine's, not a second implementation; it is checked
against the PyTorch model on a probe batch with mixed τ every time a session is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tempscale_index.engine.cache import cache_root
from tempscale_index.engine.patch import TempScaleNotAppliedError, temperature, traced_temperature
from tempscale_index.engine.precision import Precision

INVERSE_TAU_INPUT = "inverse_temperature"
CANDIDATE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PROBE_TOLERANCE = 1e-3


class OnnxBackendError(RuntimeError):
    """The model cannot run under ONNX Runtime (not installed, not exportable, or outputs disagree)."""


def default_cache_dir() -> Path:
    """Where exported graphs are kept: ``$TEMPSCALE_INDEX_CACHE`` or ``~/.cache/tempscale-index``."""
    return cache_root() / "onnx"


class _WithTemperature(nn.Module):
    """The encoder with 1/τ as its last positional input, returning the token embeddings."""

    def __init__(self, encoder: nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *tensors, inverse = inputs
        with traced_temperature(inverse):
            return self.encoder(**dict(zip(self.input_names, tensors))).last_hidden_state


class OnnxEncoder:
    """ONNX Runtime standing in for ``encoder(**features).last_hidden_state`` at per-text τ.

    ``precision="int8"`` runs the same graph with its weights quantized to int8 by ONNX Runtime's dynamic
    quantization (about 2x the throughput on CPU; vectors move slightly, see docs/pipeline.md for the measured
    retrieval cost). The float32 graph is always checked against PyTorch first; the int8 graph is derived from it.
    """

    def __init__(
        self, encoder: nn.Module, weights_sha256: str, precision: Precision = "float32", cache_dir: Path | None = None
    ) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise OnnxBackendError("backend='onnx' needs onnxruntime: pip install 'tempscale-index[onnx]'") from exc
        if next(encoder.parameters()).device.type != "cpu":
            raise OnnxBackendError("backend='onnx' runs on CPU; load the model with device='cpu'")
        self._runtime = onnxruntime
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        accepted = inspect.signature(encoder.forward).parameters
        self.input_names = [name for name in CANDIDATE_INPUTS if name in accepted]
        if not {"input_ids", "attention_mask"} <= set(self.input_names):
            raise OnnxBackendError(f"{type(encoder).__name__}.forward takes no input_ids/attention_mask to export")
        self.precision = precision
        cache = cache_dir or default_cache_dir()
        self.path = _exported_graph(encoder, self.input_names, weights_sha256, cache)
        try:
            self._session(torch.get_num_threads())
        except Exception:  # a damaged cache file (onnxruntime raises its own exception types): export again
            self.path.unlink(missing_ok=True)
            self._sessions.clear()
            self.path = _exported_graph(encoder, self.input_names, weights_sha256, cache)
        self._check_against(encoder)
        if precision == "int8":
            self.path = _quantized_graph(self.path)
            self._sessions.clear()
            self._check_tau_reaches(encoder)

    def _session(self, threads: int) -> Any:
        """One session per intra-op thread count: parallel workers run single-threaded sessions side by side."""
        with self._lock:
            if threads not in self._sessions:
                options = self._runtime.SessionOptions()
                options.intra_op_num_threads = threads
                options.log_severity_level = 3
                # idle threads sleep instead of spinning: a spinning pool takes the cores that FAISS and torch
                # need next (measured: the next torch forward pass ran 2x slower)
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[threads] = self._runtime.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[threads]

    def __call__(
        self, features: dict[str, torch.Tensor], taus: Sequence[float], threads: int | None = None
    ) -> torch.Tensor:
        feed = {name: features[name].cpu().numpy().astype(np.int64) for name in self.input_names if name in features}
        batch = len(features["input_ids"])
        if "token_type_ids" in self.input_names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        feed[INVERSE_TAU_INPUT] = (1.0 / np.broadcast_to(np.asarray(taus, dtype=np.float64), (batch,))).astype(
            np.float32
        )
        (hidden,) = self._session(threads or torch.get_num_threads()).run(None, feed)
        return torch.from_numpy(hidden)

    def _check_against(self, encoder: nn.Module) -> None:
        """Same token embeddings as the PyTorch model on a padded batch mixing τ, or refuse."""
        features, taus, valid = _probe(encoder)
        with torch.inference_mode(), temperature(taus):
            expected = encoder(**features).last_hidden_state
        error = float((expected[valid] - self(features, taus)[valid]).abs().max())
        if not error <= PROBE_TOLERANCE:
            raise TempScaleNotAppliedError(
                f"the ONNX graph of {type(encoder).__name__} differs from the PyTorch model by {error:.2e} "
                f"(tolerance {PROBE_TOLERANCE}); use backend='torch'. Graph: {self.path}"
            )

    def _check_tau_reaches(self, encoder: nn.Module) -> None:
        """The quantized graph still reacts to τ (its numbers differ from PyTorch by design)."""
        features, taus, valid = _probe(encoder)
        plain, scaled = self(features, [1.0] * len(taus))[valid], self(features, taus)[valid]
        if not torch.isfinite(scaled).all() or torch.allclose(plain, scaled, atol=1e-6, rtol=0):
            raise TempScaleNotAppliedError(f"τ does not change the output of the int8 graph {self.path}")


def _probe(encoder: nn.Module) -> tuple[dict[str, torch.Tensor], list[float], torch.Tensor]:
    """A padded batch of three texts at τ 1, 0.5 and 0.8, and the mask of its real tokens."""
    generator = torch.Generator().manual_seed(0)
    vocab = int(getattr(encoder.config, "vocab_size", 100) or 100)
    input_ids = torch.randint(min(5, vocab - 1), vocab, (3, 19), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 11:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}, [1.0, 0.5, 0.8], attention_mask.bool()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice through the root logger, which would also configure logging for the
    whole application (logging.basicConfig); a handler of our own for the duration prevents both."""
    root, guard = logging.getLogger(), logging.NullHandler()
    level = root.level
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(guard)
        root.setLevel(level)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """The exporter logs advice that is no use to our users ("torchvision is not installed…") as warnings."""
    target = logging.getLogger(name)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


def _quantized_graph(path: Path) -> Path:
    """The int8 twin of a float32 graph (weights quantized per channel, activations at run time), cached.

    Down projections (weights with more rows than columns: the FFN's second matrix) stay float32: their inputs
    carry the post-activation outliers that int8 handles worst (on MiniLM this halves the cosine error to the
    float32 vectors, 0.9913 → 0.9958 mean, for ~10% of int8's speed)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.with_name(f"{path.stem}-int8.onnx")
    if target.exists():
        return target
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".onnx.partial")
    os.close(handle)
    try:
        graph = onnx.load(str(path)).graph
        shapes = {weight.name: tuple(weight.dims) for weight in graph.initializer}
        down = [
            node.name
            for node in graph.node
            if node.op_type == "MatMul"
            and len(shapes.get(node.input[1], ())) == 2
            and shapes[node.input[1]][0] > shapes[node.input[1]][1]
        ]
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
            warnings.simplefilter("ignore")
            quantize_dynamic(path, temporary, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=down)
        os.replace(temporary, target)
    except Exception as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OnnxBackendError(f"could not quantize {path.name} to int8 ({type(exc).__name__}: {exc})") from exc
    return target


def _exported_graph(encoder: nn.Module, input_names: list[str], weights_sha256: str, cache_dir: Path) -> Path:
    """The cached graph for these weights and library versions, exported (atomically) on first use."""
    import transformers

    key = hashlib.sha256(
        f"{weights_sha256}|{type(encoder).__name__}|{input_names}|{torch.__version__}|{transformers.__version__}".encode()
    ).hexdigest()[:24]
    path = cache_dir / f"{type(encoder).__name__}-{key}.onnx"
    if path.exists():
        return path
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_dir, suffix=".onnx.partial")
        os.close(handle)
    except OSError as exc:
        raise OnnxBackendError(
            f"cannot write the ONNX graph cache {cache_dir} ({exc.strerror or exc}); set "
            "TEMPSCALE_INDEX_CACHE to a writable folder"
        ) from exc
    wrapper = _WithTemperature(encoder, input_names).eval()
    # a padded row, so that no "mask is all ones" shortcut is traced into the graph
    example = {name: torch.ones(2, 8, dtype=torch.long) for name in input_names}
    example["attention_mask"][1, 5:] = 0
    example_inputs = (*example.values(), torch.ones(2))
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
    shapes = ((*({0: batch, 1: tokens} for _ in input_names), {0: batch}),)  # forward(*inputs) is one argument
    try:
        with (
            warnings.catch_warnings(),
            torch.no_grad(),
            contextlib.redirect_stdout(io.StringIO()),
            _quiet_logger("torch.onnx"),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                example_inputs,
                temporary,
                input_names=[*input_names, INVERSE_TAU_INPUT],
                output_names=["token_embeddings"],
                dynamic_shapes=shapes,
                dynamo=True,
                external_data=False,
            )
        os.replace(temporary, path)
    except Exception as exc:
        Path(temporary).unlink(missing_ok=True)
        raise OnnxBackendError(
            f"could not export {type(encoder).__name__} to ONNX ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); use backend='torch'"
        ) from exc
    return path
