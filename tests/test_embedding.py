"""TempScaleEmbedding with the bundled MiniLM: equivalence at τ = 1, per-kind schedules, LlamaIndex paths, bad input."""

from __future__ import annotations

import asyncio
import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import MetadataMode, TextNode
from transformers import BertConfig, BertModel, BertTokenizerFast, MPNetConfig, MPNetModel

from tempscale_index.chunking import model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.engine.batching import balanced_batches
from tempscale_index.node_metadata import METADATA_KEYS, TAU_KEY, TOKENS_KEY
from tempscale_index.schedules import LogLinearSchedule

MIXED = [
    "Short query.",
    "The committee discussed the budget for the remote control prototype and agreed on a rubber case. " * 6,
    "A medium length sentence about speech recognition and the acoustic front end of the system.",
    "word " * 400,  # longer than the 256-token window
    "Two words",
]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_tau_one_equals_sentence_transformers_encode(minilm: TempScaleEmbedding) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = minilm.encode(MIXED).embeddings
    reference = minilm.sentence_transformer.encode(MIXED, normalize_embeddings=True, convert_to_numpy=True)
    assert cosine_rows(ours, reference).min() >= 0.99999


def test_batching_and_padding_do_not_change_vectors(minilm: TempScaleEmbedding) -> None:
    schedule = LogLinearSchedule(8, 1.0, 256, 0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batched = minilm.encode(MIXED, temperature_override=schedule)
        alone = [minilm.encode([text], temperature_override=schedule) for text in MIXED]
    assert len(set(batched.taus)) > 2, "the batch must mix several τ"
    assert [a.taus[0] for a in alone] == batched.taus
    assert cosine_rows(batched.embeddings, np.vstack([a.embeddings for a in alone])).min() >= 0.99999


def test_queries_and_documents_use_their_own_schedule() -> None:
    embedding = TempScaleEmbedding(query_temperature=0.5, document_temperature=LogLinearSchedule(4, 1.0, 64, 0.7))
    text = "How did the team decide on the energy source for the remote control?"
    query = np.array(embedding.get_query_embedding(text))
    document = np.array(embedding.get_text_embedding(text))
    plain = embedding.encode([text], temperature_override=1.0).embeddings[0]
    assert embedding.encode([text], "query").taus == [0.5]
    doc_encoded = embedding.encode([text], "document")
    assert 0.7 < doc_encoded.taus[0] < 1.0
    assert np.allclose(query, embedding.encode([text], "query").embeddings[0], atol=1e-6)
    assert np.allclose(document, doc_encoded.embeddings[0], atol=1e-6)
    assert float(query @ plain) < 0.9999 and float(document @ plain) < 0.9999
    assert float(query @ document) < 0.9999


def test_longer_texts_get_lower_tau_and_tau_is_recorded_in_nodes() -> None:
    embedding = TempScaleEmbedding(document_temperature=LogLinearSchedule(16, 1.0, 256, 0.8))
    nodes = [TextNode(text="tiny"), TextNode(text="a longer passage about meetings " * 20)]
    embedding(nodes)
    short, long = nodes
    assert short.metadata[TAU_KEY] > long.metadata[TAU_KEY]
    assert long.metadata[TOKENS_KEY] > short.metadata[TOKENS_KEY]
    assert all(len(node.embedding) == 384 for node in nodes)
    for node in nodes:
        for mode in (MetadataMode.EMBED, MetadataMode.LLM):
            assert "tempscale" not in node.get_content(metadata_mode=mode)


def test_ingestion_pipeline_records_tau(minilm: TempScaleEmbedding) -> None:
    docs = [Document(text="The budget was approved after a long debate. " * 30, metadata={"file_name": "a.txt"})]
    pipeline = IngestionPipeline(transformations=[model_token_splitter(minilm, chunk_size=64), minilm])
    nodes = pipeline.run(documents=docs)
    assert len(nodes) > 1
    for node in nodes:
        assert set(METADATA_KEYS) <= set(node.metadata)
        assert node.metadata[TOKENS_KEY] <= minilm.max_length
        embedded_text = node.get_content(metadata_mode=MetadataMode.EMBED)
        assert len(minilm.tokenizer.encode(embedded_text)) <= 64 + 2
        assert "tempscale" not in node.get_content(metadata_mode=MetadataMode.EMBED)
        assert "file_name" in node.get_content(metadata_mode=MetadataMode.EMBED)


def test_settings_transformations_path_records_tau(minilm: TempScaleEmbedding) -> None:
    """The plain index path: Settings.embed_model alone hands the embedding texts, so the embedding also runs
    as the last transformation and the index keeps the vectors it computed."""
    previous = (Settings._embed_model, Settings._transformations)
    try:
        Settings.embed_model = minilm
        Settings.transformations = [model_token_splitter(minilm, chunk_size=48), minilm]
        docs = [Document(text="Speaker A: we should use a kinetic battery. " * 20), Document(text="Cats sleep.")]
        index = VectorStoreIndex.from_documents(docs)
        hits = index.as_retriever(similarity_top_k=3).retrieve("Which battery did they choose?")
    finally:
        Settings._embed_model, Settings._transformations = previous
    assert hits and all(TAU_KEY in hit.node.metadata for hit in hits)
    assert "kinetic" in hits[0].node.get_content()


def test_async_and_concurrent_queries_match_sync(minilm: TempScaleEmbedding) -> None:
    queries = ["what was decided about the budget", "who presented the prototype", "next meeting date"]
    expected = [minilm.get_query_embedding(q) for q in queries]

    async def run_async() -> list[list[float]]:
        return await asyncio.gather(*(minilm.aget_query_embedding(q) for q in queries))

    got_async = asyncio.run(run_async())
    with ThreadPoolExecutor(max_workers=3) as pool:
        got_threads = list(pool.map(minilm.get_query_embedding, queries * 3))
    assert np.allclose(got_async, expected, atol=1e-6)
    assert np.allclose(got_threads, expected * 3, atol=1e-6)


def test_text_embedding_batch_keeps_input_order(minilm: TempScaleEmbedding) -> None:
    texts = ["b " * 100, "a", "c " * 30]
    batch = minilm.get_text_embedding_batch(texts)
    singles = [minilm.get_text_embedding(t) for t in texts]
    assert np.allclose(batch, singles, atol=1e-5)


def test_overlong_text_is_truncated_with_one_warning() -> None:
    embedding = TempScaleEmbedding()
    with pytest.warns(UserWarning, match="max_length=256") as record:
        counts = embedding.token_counts(["word " * 600, "short"])
        embedding.token_counts(["word " * 600])
    assert counts[0] == 256
    assert sum("max_length" in str(w.message) for w in record) == 1


def test_empty_and_whitespace_texts_embed_like_sentence_transformers(minilm: TempScaleEmbedding) -> None:
    encoded = minilm.encode(["", "   ", "real text"])
    assert np.isfinite(encoded.embeddings).all()
    assert encoded.token_counts[:2] == [2, 2]  # [CLS] [SEP]
    reference = minilm.sentence_transformer.encode(["", "   "], normalize_embeddings=True)
    assert cosine_rows(encoded.embeddings[:2], reference).min() >= 0.99999
    nodes = minilm([TextNode(text=""), TextNode(text="something")])
    assert all(node.embedding is not None for node in nodes)


@pytest.mark.parametrize("bad", [None, 3, b"bytes"])
def test_non_string_text_is_rejected(minilm: TempScaleEmbedding, bad) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string"):
        minilm.encode(["fine", bad])
    with pytest.raises(TypeError, match="list of strings"):
        minilm.encode("not a list")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_names_the_argument(bad) -> None:
    with pytest.raises(ValueError, match="query_temperature"):
        TempScaleEmbedding(query_temperature=bad)


def test_unknown_model_gives_one_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"model_name='no-such-org/no-such-model' could not be loaded"):
        TempScaleEmbedding(model_name="no-such-org/no-such-model")
    with pytest.raises(ValueError, match="could not be loaded"):
        TempScaleEmbedding(model_name=str(tmp_path / "missing"))


@pytest.mark.parametrize("family", ["bert", "mpnet"])
def test_any_local_model_directory_works(tmp_path, family: str) -> None:
    """A plain transformers checkpoint (no sentence-transformers files) loads with mean pooling."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>"]
    vocab += [w for w in ["the", "a", "meeting", "budget", "remote", "control", "team", "decided", "on", "battery"]]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab))
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    small = dict(
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        intermediate_size=64,
        vocab_size=len(vocab),
        initializer_range=0.5,
    )
    model = BertModel(BertConfig(**small)) if family == "bert" else MPNetModel(MPNetConfig(**small))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    embedding = TempScaleEmbedding(model_name=str(tmp_path), document_temperature=0.5, max_length=32)
    text = "the team decided on the remote control budget"
    scaled = embedding.encode([text]).embeddings[0]
    plain = embedding.encode([text], temperature_override=1.0).embeddings[0]
    assert embedding.dimension == 32
    assert float(scaled @ plain) < 0.99999
    assert json.loads(embedding.model_dump_json())["document_temperature"] == {"type": "constant", "value": 0.5}


def test_cpu_workers_give_the_serial_vectors_in_input_order(minilm: TempScaleEmbedding) -> None:
    schedule = LogLinearSchedule(4, 1.0, 64, 0.6)
    texts = [f"{i} " + "meeting notes about the remote control " * (i % 7 + 1) for i in range(23)]
    serial = minilm.model_copy(update={"embed_batch_size": 4, "cpu_workers": 1})
    parallel = minilm.model_copy(update={"embed_batch_size": 4, "cpu_workers": 3})
    assert parallel._worker_count(6) == 3 and serial._worker_count(6) == 1 and parallel._worker_count(1) == 1
    before = torch.get_num_threads()
    one = serial.encode(texts, temperature_override=schedule)
    many = parallel.encode(texts, temperature_override=schedule)
    assert torch.get_num_threads() == before  # workers set their own thread count, never the caller's
    assert many.taus == one.taus and len(set(one.taus)) > 3
    assert np.abs(many.embeddings - one.embeddings).max() < 1e-5


def test_workers_get_batches_of_equal_size_not_one_full_and_one_short(minilm: TempScaleEmbedding, monkeypatch):
    """36 texts in batches of 32 on 2 workers ran 32 + 4: the worker with 32 took as long as all 36 serially.
    (The selector embeds such sizes: its cost on 2 cores was twice what ingest pays per text.)"""
    assert [len(b) for b in balanced_batches(np.arange(36), 32, 2)] == [18, 18]
    assert [len(b) for b in balanced_batches(np.arange(70), 32, 2)] == [18, 18, 17, 17]
    assert [len(b) for b in balanced_batches(np.arange(64), 32, 2)] == [32, 32]
    assert [len(b) for b in balanced_batches(np.arange(5), 32, 1)] == [5]
    assert [len(b) for b in balanced_batches(np.arange(3), 32, 4)] == [1, 1, 1] and balanced_batches(
        np.arange(0), 8, 2
    ) == []
    assert np.concatenate(balanced_batches(np.arange(70), 32, 2)).tolist() == list(range(70))  # order kept
    parallel = minilm.model_copy(update={"cpu_workers": 2})
    sizes: list[int] = []
    forward = type(parallel)._forward_batch
    monkeypatch.setattr(
        parallel, "_forward_batch", lambda ids, taus: sizes.append(len(ids)) or forward(parallel, ids, taus)
    )
    parallel.encode([f"note {i} about the remote control" for i in range(36)])
    assert sorted(sizes) == [18, 18]


def test_a_failing_batch_fails_the_whole_parallel_call(minilm: TempScaleEmbedding, monkeypatch) -> None:
    parallel = minilm.model_copy(update={"embed_batch_size": 2, "cpu_workers": 2})
    calls = []

    def broken(token_ids, taus):
        calls.append(len(token_ids))
        raise RuntimeError("out of memory in batch")

    monkeypatch.setattr(parallel, "_forward_batch", broken)
    with pytest.raises(RuntimeError, match="out of memory in batch"):
        parallel.encode(["a b c"] * 40)
    assert len(calls) < 20  # the batches still queued were cancelled


def test_default_workers_follow_torch_threads_up_to_four(minilm: TempScaleEmbedding, monkeypatch) -> None:
    assert minilm.cpu_workers is None
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert minilm._worker_count(10) == 2 and minilm._worker_count(1) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    assert minilm._worker_count(10) == 4 and minilm._worker_count(3) == 3
