"""The ONNX Runtime backend: the same vectors as the PyTorch engine at per-text τ, a cached graph, loud failures."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from transformers import AutoModel

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.engine import TempScaleNotAppliedError, apply_tempscale, temperature
from tempscale_index.engine.onnx_backend import OnnxBackendError, OnnxEncoder
from tempscale_index.index_config import IndexConfigMismatchError
from tempscale_index.pipeline import TempScaleRetriever, ingest
from tempscale_index.schedules import LogLinearSchedule
from tests.pipeline_helpers import package_docs
from tests.test_engine import CONFIGS, padded_batch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for the module: exporting MiniLM takes ~10 s, so its tests share the graph."""
    return tmp_path_factory.mktemp("tempscale-cache")


@pytest.fixture(autouse=True)
def graph_cache(shared_cache, monkeypatch):
    monkeypatch.setenv("TEMPSCALE_INDEX_CACHE", str(shared_cache))
    return shared_cache / "onnx"


def test_minilm_onnx_matches_torch_with_length_dependent_tau(graph_cache) -> None:
    schedule = LogLinearSchedule(short_tokens=8, short_tau=1.0, long_tokens=256, long_tau=0.5)
    torch_side = TempScaleEmbedding(document_temperature=schedule, query_temperature=0.7, cpu_workers=1)
    onnx_side = TempScaleEmbedding(document_temperature=schedule, query_temperature=0.7, backend="onnx")
    texts = ["a short one", "a somewhat longer sentence about meetings and remote controls " * 3, "budget " * 200, "x"]
    expected, got = torch_side.encode(texts), onnx_side.encode(texts)
    assert got.taus == expected.taus and len(set(got.taus)) == 3  # two texts clip to τ = 1
    assert np.abs(got.embeddings - expected.embeddings).max() < 1e-4
    query = onnx_side.get_query_embedding("who decided the budget?")
    assert np.allclose(query, torch_side.get_query_embedding("who decided the budget?"), atol=1e-4)
    # and τ is really in the graph: the same text at another τ gives another vector
    assert np.abs(onnx_side.encode(texts[:1], temperature_override=0.3).embeddings - got.embeddings[:1]).max() > 1e-3
    assert len(list(graph_cache.glob("BertModel-*.onnx"))) == 1


def test_graph_is_exported_once_and_reused(graph_cache) -> None:
    TempScaleEmbedding(backend="onnx")
    (graph,) = graph_cache.glob("BertModel-*.onnx")
    stamp = graph.stat().st_mtime_ns
    TempScaleEmbedding(backend="onnx")
    assert graph.stat().st_mtime_ns == stamp
    assert not list(graph_cache.glob("*.partial"))


def test_corrupted_cached_graph_is_exported_again(graph_cache) -> None:
    TempScaleEmbedding(backend="onnx")
    (graph,) = graph_cache.glob("BertModel-*.onnx")
    graph.write_bytes(graph.read_bytes()[:1000])
    embedding = TempScaleEmbedding(backend="onnx")
    assert graph.stat().st_size > 1000
    assert len(embedding.get_query_embedding("still works")) == 384


@pytest.mark.parametrize("name", ["xlm-roberta", "mpnet"])  # BERT is MiniLM above; MPNet scales a position bias
def test_random_weight_families_match_in_onnx(name: str, graph_cache) -> None:
    torch.manual_seed(0)
    model = AutoModel.from_config(CONFIGS[name](), attn_implementation="eager").eval()
    apply_tempscale(model)
    encoder = OnnxEncoder(model, weights_sha256=name)  # checks a padded mixed-τ probe against PyTorch itself
    ids, mask = padded_batch()
    with torch.inference_mode(), temperature([0.5, 0.8, 0.3]):
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
    got = encoder({"input_ids": ids, "attention_mask": mask}, [0.5, 0.8, 0.3])
    valid = mask.bool()
    assert (expected[valid] - got[valid]).abs().max() < 1e-4


def test_graph_that_disagrees_with_the_model_is_refused(graph_cache) -> None:
    torch.manual_seed(0)
    model = AutoModel.from_config(CONFIGS["xlm-roberta"](), attn_implementation="eager").eval()
    apply_tempscale(model)
    encoder = OnnxEncoder(model, weights_sha256="xlm-roberta")
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.mul_(2.0)  # the graph now holds stale weights
    with pytest.raises(TempScaleNotAppliedError, match="differs from the PyTorch model"):
        encoder._check_against(model)


def test_int8_moves_vectors_slightly_and_keeps_tau(graph_cache) -> None:
    full = TempScaleEmbedding(backend="onnx", document_temperature=0.8)
    int8 = TempScaleEmbedding(backend="onnx", precision="int8", document_temperature=0.8)
    texts = [doc.text for doc in package_docs(count=4, max_chars=900)]
    a, b = full.encode(texts).embeddings, int8.encode(texts).embeddings
    cosines = (a * b).sum(1)
    assert cosines.min() > 0.95 and np.abs(a - b).max() > 1e-4  # close, and really quantized
    assert np.abs(int8.encode(texts[:1], temperature_override=1.0).embeddings - b[:1]).max() > 1e-3
    (graph,) = graph_cache.glob("BertModel-*-int8.onnx")
    kinds = Counter(node.op_type for node in onnx.load(str(graph)).graph.node)
    # per layer: query, key, value, attention output and FFN up quantized; the FFN down projection kept float32
    assert kinds["MatMulInteger"] == 5 * 6 and kinds["MatMul"] == 3 * 6  # (+ the two attention products)
    with pytest.raises(ValueError, match="not backend='torch'"):
        TempScaleEmbedding(precision="int8", backend="torch")
    assert TempScaleEmbedding(precision="int8").backend == "onnx"


def test_int8_index_records_its_precision_and_queries_in_int8(tmp_path, graph_cache) -> None:
    int8 = TempScaleEmbedding(backend="onnx", precision="int8")
    docs = package_docs(count=3, max_chars=900)
    ingest(docs, tmp_path / "index", int8, chunk_size=96, chunk_overlap=16)
    retriever = TempScaleRetriever.from_dir(tmp_path / "index", similarity_top_k=2, backend="onnx")
    assert retriever.store.config.precision == "int8" and retriever.embedding.precision == "int8"
    node = retriever.store.get_nodes([0])[0]
    assert retriever.retrieve(node.text)[0].node.node_id == node.node_id
    with pytest.raises(IndexConfigMismatchError, match="precision"):
        TempScaleRetriever.from_dir(tmp_path / "index", TempScaleEmbedding())


def test_unwritable_cache_is_a_backend_error_the_retriever_can_fall_back_from(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TEMPSCALE_INDEX_CACHE", str(blocker / "cache"))
    torch.manual_seed(0)
    model = AutoModel.from_config(CONFIGS["xlm-roberta"](), attn_implementation="eager").eval()
    apply_tempscale(model)
    with pytest.raises(OnnxBackendError, match="TEMPSCALE_INDEX_CACHE"):
        OnnxEncoder(model, weights_sha256="elsewhere")
