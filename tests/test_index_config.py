"""``IndexConfig`` is plain data (a manifest reads without a model); the embedding an index asks for is built by
``TempScaleEmbedding.from_index_config``, which refuses overrides that change what the index records."""

from __future__ import annotations

import pickle

import pytest

from tempscale_index.index_config import IndexConfig, IndexConfigMismatchError
from tests.pipeline_helpers import fake_config


def test_settings_are_compared_before_any_model_loads() -> None:
    stored = fake_config(query_tau=0.9)
    assert IndexConfig.from_manifest({"config": stored.model_dump()}) == stored
    stored.ensure_matches(stored.with_settings({"query_temperature": 0.9, "model_name": "test-model"}))
    with pytest.raises(IndexConfigMismatchError) as caught:
        stored.ensure_matches(stored.with_settings({"query_temperature": 0.5}), where="the index at runs/x")
    error = caught.value
    assert set(error.differences) == {"query_temperature"} and error.where == "the index at runs/x"
    assert "TempScaleEmbedding.from_index_config" in str(error) and "command line" in str(error)
    with pytest.raises(ValueError, match="not index settings"):
        stored.with_settings({"chunk_size": 100})


def test_the_mismatch_error_survives_pickling() -> None:
    """Ray sends exceptions between processes: the message must come back whole."""
    stored = fake_config()
    with pytest.raises(IndexConfigMismatchError) as caught:
        stored.ensure_matches(fake_config(query_tau=0.5))
    restored = pickle.loads(pickle.dumps(caught.value))
    assert str(restored) == str(caught.value)


def test_from_index_config_builds_the_recorded_embedding_and_refuses_changes(minilm) -> None:
    from tempscale_index.embedding import TempScaleEmbedding

    config = minilm.index_config()
    rebuilt = TempScaleEmbedding.from_index_config(config, embed_batch_size=8)
    assert rebuilt.index_config() == config and rebuilt.embed_batch_size == 8
    with pytest.raises(IndexConfigMismatchError, match="query_temperature"):
        TempScaleEmbedding.from_index_config(config, query_temperature=0.5)


def test_match_index_adopts_the_recorded_schedule_then_refuses_other_differences(minilm) -> None:
    """The one helper every entry point (ingest, retriever, store, connectors) uses on an existing index."""
    from tempscale_index.embedding import TempScaleEmbedding

    recorded = minilm.index_config().model_copy(update={"document_temperature": {"type": "constant", "value": 0.8}})
    auto = TempScaleEmbedding(query_temperature=1.0)
    auto.match_index(recorded, where="the index at runs/x")
    assert auto.document_temperature.to_dict() == recorded.document_temperature and auto.auto_resolved
    with pytest.raises(IndexConfigMismatchError, match="the index at runs/y") as caught:
        TempScaleEmbedding(query_temperature=0.5).match_index(recorded, where="the index at runs/y")
    assert set(caught.value.differences) == {"query_temperature"}
