"""Shared fixtures: one bundled MiniLM per test session, QMSum when the shared datasets are present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QMSUM_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "qmsum" / "test"


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 at τ = 1 for documents and queries (tests set τ explicitly)."""
    from tempscale_index.embedding import TempScaleEmbedding

    return TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0)


@pytest.fixture(scope="session")
def qmsum_dir() -> Path:
    if not QMSUM_DIR.is_dir():
        pytest.skip(f"QMSum not found at {QMSUM_DIR}")
    return QMSUM_DIR
