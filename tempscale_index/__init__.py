"""tempscale-index: attention-temperature (TempScale) embeddings for long documents in LlamaIndex and FAISS.

Names load on first use (PEP 562), so importing the package, or running ``tempscale-index --help``, loads no
torch, transformers or LlamaIndex.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from tempscale_index.embedding import (
        EncodedTexts as EncodedTexts,
    )
    from tempscale_index.embedding import (
        TempScaleEmbedding as TempScaleEmbedding,
    )
    from tempscale_index.engine import (
        apply_tempscale as apply_tempscale,
    )
    from tempscale_index.engine import (
        temperature as temperature,
    )
    from tempscale_index.schedules import (
        CallableSchedule as CallableSchedule,
    )
    from tempscale_index.schedules import (
        ConstantSchedule as ConstantSchedule,
    )
    from tempscale_index.schedules import (
        LogLinearSchedule as LogLinearSchedule,
    )
    from tempscale_index.schedules import (
        PiecewiseSchedule as PiecewiseSchedule,
    )
    from tempscale_index.schedules import (
        Schedule as Schedule,
    )
    from tempscale_index.schedules import (
        as_schedule as as_schedule,
    )

__version__ = "0.1.0"

_EXPORTS = {
    "CallableSchedule": ".schedules",
    "ConstantSchedule": ".schedules",
    "EncodedTexts": ".embedding",
    "LogLinearSchedule": ".schedules",
    "PiecewiseSchedule": ".schedules",
    "Schedule": ".schedules",
    "TempScaleEmbedding": ".embedding",
    "apply_tempscale": ".engine",
    "as_schedule": ".schedules",
    "temperature": ".engine",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
