"""Where tempscale-index keeps what it can rebuild (exported graphs, query paths): one place, no dependencies."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$TEMPSCALE_INDEX_CACHE`` or ``~/.cache/tempscale-index``."""
    return Path(os.environ.get("TEMPSCALE_INDEX_CACHE") or Path.home() / ".cache" / "tempscale-index")
