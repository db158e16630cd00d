"""A three-meeting QMSum folder: real transcripts and questions, small enough to embed in a test."""

from __future__ import annotations

import shutil
from pathlib import Path

SMALL_MEETINGS = ("IS1003a", "ES2011a", "ES2004a")  # the three shortest transcripts of the test split


def copy_small_qmsum(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in SMALL_MEETINGS:
        shutil.copy(source / f"{name}.json", target / f"{name}.json")
    return target
