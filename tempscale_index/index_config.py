"""What an index was built with: the facts a query must agree with to search it correctly.

A query embedded with another model, another query τ or another instruction than the index expects degrades
results silently, so every store (FAISS directory, vector database collection) saves this next to its vectors
and checks it before answering. Plain data that the embedding produces (``TempScaleEmbedding.index_config()``)
and knows nothing of it: reading a manifest loads no model and no torch; the embedding an index asks for comes
from ``TempScaleEmbedding.from_index_config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tempscale_index.engine.precision import Precision

SCHEDULE_FIELDS = ("document_temperature", "query_temperature")
PENDING_AUTO: dict[str, Any] = {"kind": "auto"}  # a new store's document τ until its first nodes decide it
RECORD_ONLY_FIELDS = ("document_temperature_selection",)  # what was decided and why; never compared


class IndexConfigMismatchError(ValueError):
    """The index was built with a different embedding configuration than the one asked for.

    ``differences`` maps each differing field to (the index's value, the value asked for), so that a front end
    (the command line) can name its own options for them.
    """

    def __init__(
        self,
        message: str | None = None,
        differences: Mapping[str, tuple[Any, Any]] | None = None,
        where: str = "this index",
    ) -> None:
        self.differences = dict(differences or {})
        self.where = where
        super().__init__(
            message
            or f"{where} was built with a different embedding configuration; queries would be embedded "
            f"inconsistently with its vectors. Differences: {self.listed()}. Use the configuration it was built "
            "with (Python: TempScaleEmbedding.from_index_config; command line: leave out the options or config "
            "file that change it) or rebuild it with the new settings."
        )

    def listed(self) -> str:
        return "; ".join(
            f"{field}: index has {ours!r}, asked for {theirs!r}" for field, (ours, theirs) in self.differences.items()
        )


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
    document_temperature_selection: dict[str, Any] | None = Field(
        default=None, description="When document_temperature was 'auto': the Selection (schedule, reason, evidence)."
    )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> IndexConfig:
        """The config recorded in a store manifest (``FaissStore.read_manifest(path)``)."""
        return cls(**manifest["config"])

    def with_settings(self, settings: Mapping[str, Any]) -> IndexConfig:
        """This config with some embedding settings replaced (schedules in any form ``as_schedule`` takes): what a
        user asks of an index, ready for ``ensure_matches`` before any model is loaded."""
        from tempscale_index.schedules import as_schedule

        unknown = sorted(set(settings) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"not index settings: {unknown}")
        settings = {key: value for key, value in settings.items() if value != "auto"}  # auto adopts the index's
        update = {
            key: as_schedule(value, key).to_dict() if key in SCHEDULE_FIELDS else value
            for key, value in settings.items()
        }
        return self.model_copy(update=update)

    def ensure_matches(self, other: IndexConfig, where: str = "this index") -> None:
        """Raise one clear error listing every field where ``other`` differs from the index's config."""
        differences = {
            field: (getattr(self, field), getattr(other, field))
            for field in type(self).model_fields
            if field not in RECORD_ONLY_FIELDS and getattr(self, field) != getattr(other, field)
        }
        if differences:
            raise IndexConfigMismatchError(differences=differences, where=where)
