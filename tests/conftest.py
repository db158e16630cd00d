"""Shared fixtures: one bundled MiniLM per test session, and real QMSum meetings shipped with the tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# exported ONNX graphs go to a cache of this test run, not the user's ~/.cache
os.environ.setdefault("TEMPSCALE_INDEX_CACHE", tempfile.mkdtemp(prefix="tempscale-test-cache-"))
# ingest and persist leave the ONNX export (tens of seconds) to the first query, as before; the tests of the
# prepared query path (test_fast_query.py) turn it back on
os.environ.setdefault("TEMPSCALE_INDEX_QUERY_PATH", "lazy")

# Four real QMSum test meetings (MIT), so that every test runs on a clean clone (tests/fixtures/qmsum/README.md).
QMSUM_DIR = Path(__file__).resolve().parent / "fixtures" / "qmsum" / "test"


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 at τ = 1 for documents and queries (tests set τ explicitly)."""
    from tempscale_index.embedding import TempScaleEmbedding

    return TempScaleEmbedding(document_temperature=1.0, query_temperature=1.0)


@pytest.fixture(scope="session")
def qmsum_dir() -> Path:
    """A folder of QMSum meetings (the shipped four); tests only read it."""
    return QMSUM_DIR


@pytest.fixture(scope="session")
def small_qmsum_dir(qmsum_dir, tmp_path_factory) -> Path:
    """Three real QMSum meetings in a folder of their own (tests only read it)."""
    from tests.qmsum_small import copy_small_qmsum

    return copy_small_qmsum(qmsum_dir, tmp_path_factory.mktemp("qmsum3"))
