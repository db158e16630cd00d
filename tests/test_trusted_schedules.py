"""Issue 15, point 3: a callable schedule (``{"type": "callable", "function": "pkg.module:fn"}``) read from an
index manifest or a collection config is never imported unless the caller opts in (Python:
``trust_callable_schedules=True``; command line: ``--trust-code``). The module here records its own import, so
every test proves that nothing ran."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from typer.testing import CliRunner

from tempscale_index.cli import app
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.schedules import UntrustedScheduleError, stored_schedule
from tempscale_index.serving.searcher import query_encoder_for
from tempscale_index.store import FaissStore
from tempscale_index.store.vector_store import TempScaleFaissVectorStore
from tests.pipeline_helpers import fake_config
from tests.test_store import DIM, add_docs

CALLABLE = {"type": "callable", "function": "planted_schedule:tau"}
REFUSED = r"asks to import and run 'planted_schedule:tau' as its τ schedule; refused"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """An importable module that leaves a marker file when imported (what a hostile index would run)."""
    marker = tmp_path / "imported"
    (tmp_path / "planted_schedule.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n\ndef tau(n):\n    return 0.9\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "planted_schedule", raising=False)
    return marker


@pytest.fixture
def hostile_index(tmp_path, planted):
    config = fake_config(DIM).model_copy(update={"query_temperature": CALLABLE, "document_temperature": CALLABLE})
    with FaissStore.create(tmp_path / "index", config) as store:
        add_docs(store, {"a": 2})
        store.commit()
    return tmp_path / "index"


def test_a_stored_callable_schedule_runs_only_on_opt_in(planted):
    with pytest.raises(UntrustedScheduleError, match=REFUSED + r".*trust_callable_schedules=True"):
        stored_schedule(CALLABLE, "the index's query_temperature")
    assert not planted.exists()
    assert stored_schedule(CALLABLE, "x", trust_callable=True).tau(10) == 0.9 and planted.exists()


def test_the_query_encoder_and_the_embedding_refuse(hostile_index, planted):
    config = FaissStore.open(hostile_index).config
    for backend in (None, "torch"):
        with pytest.raises(UntrustedScheduleError, match=REFUSED):
            query_encoder_for(config, backend)
    with pytest.raises(UntrustedScheduleError, match=REFUSED):
        TempScaleEmbedding.from_index_config(config)
    assert not planted.exists()


def test_the_vector_store_refuses(hostile_index, planted):
    store = TempScaleFaissVectorStore.from_persist_dir(hostile_index)
    with pytest.raises(UntrustedScheduleError, match=REFUSED):
        store.embed_model  # noqa: B018 - the property builds the recorded embedding
    vector = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
    node = TextNode(text="x", embedding=vector.tolist(), metadata={"tempscale_tau": 0.9, "tempscale_tokens": 3})
    with pytest.raises(UntrustedScheduleError, match=REFUSED):
        store.add([node])
    store.close()
    assert not planted.exists()


def test_a_connector_refuses(planted, monkeypatch):
    pytest.importorskip("lancedb")
    pytest.importorskip("llama_index.vector_stores.lancedb")
    from tempscale_index.connectors.lancedb import LanceDBConnector

    connector = LanceDBConnector("c", uri=str(planted.parent / "lancedb"))
    config = fake_config(DIM).model_copy(update={"query_temperature": CALLABLE})
    monkeypatch.setattr(connector, "load_config", lambda: config)  # the collection's stored config
    with pytest.raises(UntrustedScheduleError, match=REFUSED):
        connector.attach()
    assert not planted.exists()


def test_the_command_line_refuses_in_one_line_and_names_the_flag(hostile_index, planted):
    result = CliRunner().invoke(app, ["query", str(hostile_index), "anything"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code != 0 and len(errors) == 1 and "--trust-code" in errors[0], result.output
    assert "Traceback" not in result.output and not planted.exists()
