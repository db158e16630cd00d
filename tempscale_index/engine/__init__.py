"""The attention engine: TempScale for a loaded transformers model. Knows nothing of LlamaIndex.

Names load on first use (PEP 562): the package itself imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tempscale_index._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from tempscale_index.engine.adapters import (
        ADAPTERS as ADAPTERS,
    )
    from tempscale_index.engine.adapters import (
        Adapter as Adapter,
    )
    from tempscale_index.engine.adapters import (
        UnsupportedArchitectureError as UnsupportedArchitectureError,
    )
    from tempscale_index.engine.adapters import (
        supported_families as supported_families,
    )
    from tempscale_index.engine.patch import (
        TempScaleNotAppliedError as TempScaleNotAppliedError,
    )
    from tempscale_index.engine.patch import (
        TempScalePatch as TempScalePatch,
    )
    from tempscale_index.engine.patch import (
        apply_tempscale as apply_tempscale,
    )
    from tempscale_index.engine.patch import (
        temperature as temperature,
    )
    from tempscale_index.engine.precision import (
        Precision as Precision,
    )

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
