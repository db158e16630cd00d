"""The attention engine: TempScale for a loaded transformers model. Knows nothing of LlamaIndex.

Names load on first use (PEP 562): the package itself imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs (re-exported lazily below)
    from tempscale_index.engine.adapters import (  # noqa: F401
        ADAPTERS,
        Adapter,
        UnsupportedArchitectureError,
        supported_families,
    )
    from tempscale_index.engine.patch import (  # noqa: F401
        TempScaleNotAppliedError,
        TempScalePatch,
        apply_tempscale,
        temperature,
    )
    from tempscale_index.engine.precision import Precision  # noqa: F401

_EXPORTS = {
    "ADAPTERS": ".adapters",
    "Adapter": ".adapters",
    "Precision": ".precision",
    "TempScaleNotAppliedError": ".patch",
    "TempScalePatch": ".patch",
    "UnsupportedArchitectureError": ".adapters",
    "apply_tempscale": ".patch",
    "supported_families": ".adapters",
    "temperature": ".patch",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
