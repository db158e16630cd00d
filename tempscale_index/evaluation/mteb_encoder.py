"""Run MTEB / LongEmbed tasks with TempScale: MTEB's query prompts get the query schedule, everything else
(documents, passages, and symmetric tasks without a prompt type) gets the document schedule.

``mteb`` is an optional dependency (``pip install 'tempscale-index[mteb]'``); importing this module without it
raises one ImportError that says so.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from tempscale_index.embedding import TempScaleEmbedding

try:
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta
    from mteb.types import PromptType
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "tempscale_index.evaluation.mteb_encoder needs the optional 'mteb' package: pip install 'tempscale-index[mteb]'"
    ) from exc


class TempScaleMTEBEncoder(AbsEncoder):
    """An MTEB encoder around a ``TempScaleEmbedding``; its schedules are part of the model's MTEB identity.

    MTEB caches results by model name and revision, so the revision carries a hash of both schedules: runs at
    different τ never overwrite each other's results.
    """

    def __init__(self, embedding: TempScaleEmbedding | None = None, **embedding_kwargs: Any) -> None:
        if embedding is not None and embedding_kwargs:
            raise ValueError("pass either a TempScaleEmbedding or keyword arguments to build one, not both")
        self.embedding = embedding if embedding is not None else TempScaleEmbedding(**embedding_kwargs)
        self.model = self.embedding.sentence_transformer
        payload = self.embedding.to_payload()
        schedules = {key: payload[key] for key in ("document_temperature", "query_temperature")}
        fingerprint = hashlib.sha256(json.dumps(schedules, sort_keys=True).encode()).hexdigest()[:12]
        base = ModelMeta.from_sentence_transformer_model(self.model)
        self.mteb_model_meta = base.model_copy(
            update={
                "name": f"{self.embedding.model_name}-tempscale",
                "revision": f"tempscale-{fingerprint}",
                "experiment_kwargs": schedules,
                "loader": None,
            }
        )

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed every batch MTEB's DataLoader yields, at the schedule its prompt type calls for."""
        kind = "query" if prompt_type == PromptType.query else "document"
        texts = [text for batch in inputs for text in batch["text"]]
        return self.embedding.encode(texts, kind).embeddings
