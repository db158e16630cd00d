"""tempscale-index: attention-temperature (TempScale) embeddings for long documents in LlamaIndex and FAISS.

Names load on first use (PEP 562), so importing the package, or running ``tempscale-index --help``, loads no
torch, transformers or LlamaIndex.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs (re-exported lazily below)
    from tempscale_index.embedding import EncodedTexts, TempScaleEmbedding  # noqa: F401
    from tempscale_index.engine import apply_tempscale, temperature  # noqa: F401
    from tempscale_index.pipeline.retriever import TempScaleRetriever  # noqa: F401
    from tempscale_index.schedules import (  # noqa: F401
        CallableSchedule,
        ConstantSchedule,
        LogLinearSchedule,
        PiecewiseSchedule,
        Schedule,
        as_schedule,
    )
    from tempscale_index.store.vector_store import TempScaleFaissVectorStore  # noqa: F401

_EXPORTS = {
    "CallableSchedule": ".schedules",
    "ConstantSchedule": ".schedules",
    "EncodedTexts": ".embedding",
    "LogLinearSchedule": ".schedules",
    "PiecewiseSchedule": ".schedules",
    "Schedule": ".schedules",
    "TempScaleEmbedding": ".embedding",
    "TempScaleFaissVectorStore": ".store.vector_store",
    "TempScaleRetriever": ".pipeline.retriever",
    "apply_tempscale": ".engine",
    "as_schedule": ".schedules",
    "temperature": ".engine",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
