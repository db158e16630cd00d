"""The attention engine: TempScale for a loaded transformers model. Knows nothing of LlamaIndex."""

from tempscale_index.engine.adapters import (
    ADAPTERS,
    Adapter,
    UnsupportedArchitectureError,
    supported_families,
)
from tempscale_index.engine.patch import (
    TempScaleNotAppliedError,
    TempScalePatch,
    apply_tempscale,
    temperature,
)

__all__ = [
    "ADAPTERS",
    "Adapter",
    "TempScaleNotAppliedError",
    "TempScalePatch",
    "UnsupportedArchitectureError",
    "apply_tempscale",
    "supported_families",
    "temperature",
]
