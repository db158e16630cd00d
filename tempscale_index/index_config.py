"""What an index was built with: the facts a query must agree with to search it correctly.

A query embedded with another model, another query τ or another instruction than the index expects degrades
results silently, so every store (FAISS directory, vector database collection) saves this next to its vectors
and checks it before answering.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.engine.onnx_backend import Precision
from tempscale_index.schedules import Schedule


class IndexConfigMismatchError(ValueError):
    """The index was built with a different embedding configuration than the one asked for."""


class IndexConfig(BaseModel):
    """The embedding configuration an index was built with (serialised into manifests and collection metadata)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str
    weights_sha256: str
    dimension: int = Field(gt=0)
    max_length: int = Field(gt=0)
    normalize: bool
    query_instruction: str
    text_instruction: str
    document_temperature: dict[str, Any]
    query_temperature: dict[str, Any]
    precision: Precision = "float32"

    @classmethod
    def from_embedding(cls, embedding: TempScaleEmbedding) -> IndexConfig:
        return cls(
            model_name=embedding.model_name,
            weights_sha256=embedding.weights_sha256,
            dimension=embedding.dimension,
            max_length=int(embedding.max_length),
            normalize=embedding.normalize,
            query_instruction=embedding.instruction_for("query"),
            text_instruction=embedding.instruction_for("document"),
            document_temperature=embedding.document_temperature.to_dict(),
            query_temperature=embedding.query_temperature.to_dict(),
            precision=embedding.precision,
        )

    def build_embedding(self, **overrides: Any) -> TempScaleEmbedding:
        """The embedding this index expects (``overrides``: device, batch size, progress bar…)."""
        embedding = TempScaleEmbedding(
            model_name=self.model_name,
            max_length=self.max_length,
            normalize=self.normalize,
            query_instruction=self.query_instruction,
            text_instruction=self.text_instruction,
            document_temperature=Schedule.from_dict(self.document_temperature),
            query_temperature=Schedule.from_dict(self.query_temperature),
            precision=self.precision,
            **overrides,
        )
        self.ensure_matches(IndexConfig.from_embedding(embedding))
        return embedding

    def ensure_matches(self, other: IndexConfig, where: str = "this index") -> None:
        """Raise one clear error listing every field where ``other`` differs from the index's config."""
        differences = [
            f"{field}: index has {getattr(self, field)!r}, asked for {getattr(other, field)!r}"
            for field in type(self).model_fields
            if getattr(self, field) != getattr(other, field)
        ]
        if differences:
            raise IndexConfigMismatchError(
                f"{where} was built with a different embedding configuration; queries would be embedded "
                "inconsistently with its vectors. Differences: " + "; ".join(differences)
                + ". Load it with IndexConfig.build_embedding() or rebuild it with the new settings."
            )
