"""The README's quickstart runs and shows τ in the retrieved nodes, and leaves LlamaIndex's global ``Settings``
as it found them (examples set ``Settings.embed_model`` and ``Settings.transformations``, which would otherwise
leak into every later test of the session)."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@contextmanager
def restored_settings() -> Iterator[None]:
    """Run the block, then put back every field of LlamaIndex's global ``Settings`` (llm, embed_model,
    transformations, callback manager…) as it was, including the ones left unset."""
    saved = dict(vars(Settings))
    try:
        yield
    finally:
        vars(Settings).clear()
        vars(Settings).update(saved)


@pytest.fixture(autouse=True)
def _llama_settings_restored() -> Iterator[None]:
    with restored_settings():
        yield


def run_quickstart(question: str, index_dir: Path | None = None) -> dict[str, Any]:
    module = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    module["main"](question, None if index_dir is None else str(index_dir))
    return module


def test_quickstart_prints_tau_of_retrieved_nodes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """With ``TempScaleEmbedding()`` as in the README: document τ 'auto' (its choice recorded), query τ 1.0."""
    from tempscale_index.store import FaissStore

    run_quickstart("What does FAISS do?", tmp_path / "index")
    lines = [line for line in capsys.readouterr().out.splitlines() if "τ=" in line]
    assert len(lines) == 3
    taus = [float(line.split("τ=")[1].split()[0]) for line in lines]
    assert all(0.8 <= tau <= 1.0 for tau in taus)
    config = FaissStore.read_manifest(tmp_path / "index")["config"]
    assert config["document_temperature_selection"]["reason"]
    assert config["query_temperature"] == {"type": "constant", "value": 1.0}


def test_the_quickstart_leaves_llamaindex_settings_alone() -> None:
    before = dict(vars(Settings))
    run_quickstart("What does FAISS do?")  # it passes its embedding explicitly
    # (LlamaIndex fills in defaults such as the node parser when first read; the embedding is never set)
    assert vars(Settings).get("_embed_model") is before.get("_embed_model")


def test_restored_settings_puts_back_what_an_example_changed() -> None:
    from llama_index.core import MockEmbedding

    before = dict(vars(Settings))
    with restored_settings():
        Settings.embed_model = MockEmbedding(embed_dim=8)
        Settings.transformations = []
        changed = {name for name, value in vars(Settings).items() if before.get(name) is not value}
        assert {"_embed_model", "_transformations"} <= changed
    assert vars(Settings) == before
    assert all(vars(Settings)[name] is value for name, value in before.items())
