"""Query vectors from ONNX Runtime, the ``tokenizers`` library and numpy alone: no torch, transformers or LlamaIndex.

Why: importing torch, transformers and sentence-transformers takes about 10 s on 2 cores, a hundred times a query's
forward pass. A process that has built a ``TempScaleEmbedding`` on the ONNX backend (whose graph was checked against
the PyTorch model) records a *query path* for it in the graph cache: where the verified graph lives and its SHA-256,
the tokenizer exactly as the embedding used it, and the pooling. Later processes embed queries from that record and
an index's config (instruction, ``max_length``, query schedule), refusing a graph or tokenizer whose hash changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tempscale_index.engine.cache import cache_root
from tempscale_index.schedules import stored_schedule
from tempscale_index.store.files import sha256_file, write_atomic_text

logger = logging.getLogger(__name__)

RECORD_FORMAT = 1
QUERY_PATH_ENV = "TEMPSCALE_INDEX_QUERY_PATH"  # 'lazy': ingest leaves the query path to the first query
POOLING_MODES = ("mean", "cls")
_PROBE_TEXTS = ("What did the committee decide about the budget?", "ÜBER naïve façade — 42 tokens, [SEP] twice!")


class QueryPathUnavailable(RuntimeError):
    """No usable torch-free query path for this model (not recorded, files changed, or onnxruntime missing)."""


def query_paths_dir() -> Path:
    return cache_root() / "query-paths"


def _record_key(model_name: str, weights_sha256: str, precision: str) -> str:
    return hashlib.sha256(f"{model_name}|{weights_sha256}|{precision}".encode()).hexdigest()[:24]


def record_query_path(embedding: Any) -> Path | None:
    """Record the torch-free query path of a ``TempScaleEmbedding`` on the ONNX backend; None when it has none.

    Only a plain text encoder qualifies (Transformer, Pooling by mean or CLS, optionally Normalize) with a fast
    tokenizer that tokenizes like the embedding does; anything else keeps to the PyTorch path.
    """
    from tempscale_index.engine.onnx_backend import INVERSE_TAU_INPUT

    graph = embedding.onnx_graph
    pooling = _pooling_of(embedding.sentence_transformer)
    tokenizer = _tokenizer_of(embedding)
    if graph is None or pooling is None or tokenizer is None:
        return None
    key = _record_key(embedding.model_name, embedding.weights_sha256, embedding.precision)
    folder = query_paths_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_path = folder / f"{key}-tokenizer.json"
    write_atomic_text(tokenizer_path, tokenizer.to_str())
    record = {
        "format": RECORD_FORMAT,
        "model_name": embedding.model_name,
        "weights_sha256": embedding.weights_sha256,
        "precision": embedding.precision,
        "graph": str(Path(graph).resolve()),
        "graph_sha256": sha256_file(Path(graph)),
        "tokenizer": str(tokenizer_path.resolve()),
        "tokenizer_sha256": sha256_file(tokenizer_path),
        "pad_token_id": int(embedding.tokenizer.pad_token_id or 0),
        "inverse_tau_input": INVERSE_TAU_INPUT,
        "pooling": pooling,
        "model_normalizes": _model_normalizes(embedding.sentence_transformer),
        "dimension": embedding.dimension,
    }
    path = folder / f"{key}.json"
    write_atomic_text(path, json.dumps(record, indent=2))
    logger.info("recorded the torch-free query path of %s in %s", embedding.model_name, path)
    return path


def prepare_query_path(embedding: Any) -> Path | None:
    """Make sure the next process can embed this index's queries without torch: record the query path of the
    embedding's model unless a verified one is there already (ingest and the store's ``persist`` call this, so
    that the export is paid once there, not by the first query). Returns the record, or None when the model
    has no torch-free path, onnxruntime is missing or ``$TEMPSCALE_INDEX_QUERY_PATH`` is ``lazy`` (the first
    query prepares it then). Never raises: a query can always fall back to PyTorch."""
    if os.environ.get(QUERY_PATH_ENV) == "lazy" or importlib.util.find_spec("onnxruntime") is None:
        return None
    config = embedding.index_config()
    try:
        _load_record(config)  # verified: graph and tokenizer hashes checked
        return query_paths_dir() / f"{_record_key(config.model_name, config.weights_sha256, config.precision)}.json"
    except QueryPathUnavailable:
        pass
    try:
        if embedding.onnx_graph is None:
            embedding = type(embedding).from_index_config(config, backend="onnx")
        return record_query_path(embedding)
    except Exception as exc:  # export refused (unsupported model), unwritable cache…: queries use PyTorch
        logger.warning("queries of this index will load PyTorch: no torch-free query path (%s)", exc)
        return None


def _pooling_of(model: Any) -> str | None:
    """'mean' or 'cls' when the model is Transformer → Pooling (→ Normalize) and the prompt is pooled too."""
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(model)
    kinds = [type(module) for module in modules]
    if kinds not in ([Transformer, Pooling], [Transformer, Pooling, Normalize]):
        return None
    config = modules[1].get_config_dict()
    mode = config.get("pooling_mode")
    return mode if mode in POOLING_MODES and config.get("include_prompt", True) else None


def _model_normalizes(model: Any) -> bool:
    from sentence_transformers.models import Normalize

    return any(isinstance(module, Normalize) for module in model)


def _tokenizer_of(embedding: Any) -> Any:
    """The embedding's fast tokenizer as a ``tokenizers.Tokenizer``, if it tokenizes the probes identically."""
    backend = getattr(embedding.tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(backend.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    probes = [embedding.instruction_for("query") + text for text in _PROBE_TEXTS]
    for max_length in (embedding.max_length, 8):
        tokenizer.enable_truncation(max_length)
        ours = [encoding.ids for encoding in tokenizer.encode_batch(probes)]
        theirs = embedding.tokenizer(probes, truncation=True, max_length=max_length, padding=False)["input_ids"]
        if ours != [list(ids) for ids in theirs]:
            logger.info("the tokenizers library tokenizes %s differently; no torch-free path", embedding.model_name)
            return None
    tokenizer.no_truncation()
    return tokenizer


@dataclass(frozen=True)
class QueryVectors:
    """Unit vectors (float32, one row per query) and the τ and token count each query was embedded at."""

    embeddings: np.ndarray
    taus: list[float]
    token_counts: list[int]


class OnnxQueryEncoder:
    """Embeds queries as ``TempScaleEmbedding.encode(texts, "query")`` does, from a recorded query path.

    ``config``: the index's ``IndexConfig`` (model, weights, precision, max_length, instruction, query schedule);
    a callable query schedule in it runs code, so it needs ``trust_callable_schedules``.
    Thread-safe: ONNX Runtime sessions accept concurrent ``run`` calls.
    """

    def __init__(self, config: Any, threads: int | None = None, trust_callable_schedules: bool = False) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise QueryPathUnavailable(f"{exc.name} is not installed") from None
        self.schedule = stored_schedule(
            dict(config.query_temperature), "the index's query_temperature", trust_callable_schedules
        )
        record = _load_record(config)
        self.config = config
        self.instruction = config.query_instruction
        self.normalize = bool(config.normalize or record["model_normalizes"])
        self._pooling = record["pooling"]
        self._pad_id = int(record["pad_token_id"])
        self._inverse_tau = record["inverse_tau_input"]
        self._tokenizer = Tokenizer.from_file(record["tokenizer"])
        self._tokenizer.enable_truncation(int(config.max_length))  # set once: encode_batch is then thread-safe
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(record["graph"], options, providers=["CPUExecutionProvider"])
        self._inputs = [node.name for node in self._session.get_inputs()]

    def encode(self, texts: Sequence[str]) -> QueryVectors:
        """One forward pass for all ``texts``, each at its own τ from the query schedule."""
        encodings = self._tokenizer.encode_batch([self.instruction + text for text in texts])
        ids = [encoding.ids for encoding in encodings]
        counts = [len(row) for row in ids]
        taus = self.schedule.taus(counts)
        input_ids = np.full((len(ids), max(counts)), self._pad_id, dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        feed = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
            self._inverse_tau: (1.0 / np.asarray(taus, dtype=np.float64)).astype(np.float32),
        }
        (hidden,) = self._session.run(None, {name: feed[name] for name in self._inputs})
        vectors = self._pool(hidden, mask)
        if self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return QueryVectors(vectors.astype(np.float32), taus, counts)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._pooling == "cls":
            return hidden[:, 0].astype(np.float32)
        weights = mask[:, :, None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _load_record(config: Any) -> dict[str, Any]:
    """The recorded query path for this index's model, with the graph and tokenizer hashes checked."""
    path = query_paths_dir() / f"{_record_key(config.model_name, config.weights_sha256, config.precision)}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QueryPathUnavailable(f"no query path recorded for {config.model_name} ({config.precision})") from None
    except ValueError as exc:
        raise QueryPathUnavailable(f"{path} is unreadable: {exc}") from None
    if record.get("format") != RECORD_FORMAT or record.get("weights_sha256") != config.weights_sha256:
        raise QueryPathUnavailable(f"{path} records another format or other weights")
    if record.get("pooling") not in POOLING_MODES:
        raise QueryPathUnavailable(f"{path}: pooling {record.get('pooling')!r} is not supported")
    for name in ("graph", "tokenizer"):
        try:
            found = sha256_file(Path(record[name]))
        except OSError:
            raise QueryPathUnavailable(f"the recorded {name} {record[name]} is missing") from None
        if found != record[f"{name}_sha256"]:
            raise QueryPathUnavailable(f"the {name} {record[name]} changed since it was verified (sha256 {found})")
    return record
