"""Ingestion with the bundled MiniLM: model-token chunks, τ in metadata, streaming, updates, retrieval, filters."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import Document
from llama_index.core.llms import MockLLM
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from tempscale_index.chunking import chunk_token_budget
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.engine.onnx_backend import OnnxBackendError
from tempscale_index.index_config import IndexConfigMismatchError
from tempscale_index.node_metadata import TAU_KEY, TOKENS_KEY, embedded_text
from tempscale_index.pipeline import (
    EmptyCorpusError,
    FaissIngestor,
    TempScaleRetriever,
    delete_documents,
    ingest,
    iter_installed_docs,
)
from tempscale_index.schedules import LogLinearSchedule
from tempscale_index.store import FaissStore
from tempscale_index.store.filters import MetadataFilterError
from tests.pipeline_helpers import package_docs, write_corpus


@pytest.fixture(scope="module")
def docs():
    return package_docs(count=5, max_chars=1200)


@pytest.fixture
def built(tmp_path, docs, minilm):
    index_dir = tmp_path / "index"
    report = ingest(docs, index_dir, minilm, chunk_size=96, chunk_overlap=16)
    return index_dir, report


def all_nodes(store: FaissStore):
    ids = [i for record in store.documents.values() for i in record.node_ids]
    return store.get_nodes(ids)


def test_chunks_fit_the_window_and_carry_their_tau_and_doc_id(built, docs, minilm):
    index_dir, report = built
    assert (report.added, report.documents_total, report.version) == (len(docs), len(docs), 1)
    with FaissStore.open(index_dir) as store:
        nodes = all_nodes(store)
        assert len(nodes) == report.chunks_added == store.num_nodes > len(docs)
        assert {node.ref_doc_id for node in nodes} == {doc.doc_id for doc in docs}
        for node in nodes:
            assert node.metadata[TAU_KEY] == 1.0
            assert node.metadata[TOKENS_KEY] <= minilm.max_length
            assert len(minilm.tokenizer.encode(node.text, add_special_tokens=False)) <= 96
            assert node.metadata["distribution"]  # the document's metadata travels with its chunks
        assert store.chunking == {"chunk_size": 96, "chunk_overlap": 16}


def test_tau_follows_the_document_schedule_per_chunk(tmp_path, docs):
    schedule = LogLinearSchedule(short_tokens=16, short_tau=1.0, long_tokens=128, long_tau=0.8)
    embedding = TempScaleEmbedding(document_temperature=schedule, query_temperature=1.0)
    ingest(docs[:2], tmp_path / "index", embedding, chunk_size=100)
    with FaissStore.open(tmp_path / "index") as store:
        nodes = all_nodes(store)
        taus = {node.metadata[TAU_KEY] for node in nodes}
        assert len(taus) > 1
        for node in nodes:
            assert node.metadata[TAU_KEY] == pytest.approx(schedule.tau(node.metadata[TOKENS_KEY]), abs=1e-6)
        # the stored vector is the chunk, as its text view shows it (metadata included), embedded at that τ
        node_id = store.documents[docs[0].doc_id].node_ids[0]
        expected = embedding.encode([embedded_text(nodes[0])], "document").embeddings[0]
        assert np.allclose(store.index.reconstruct(node_id), expected, atol=1e-5)


def test_reingesting_unchanged_documents_is_a_no_op(built, docs, minilm):
    index_dir, _ = built
    report = ingest(docs, index_dir, minilm)
    assert (report.unchanged, report.added, report.chunks_added, report.version) == (len(docs), 0, 0, 1)


def test_a_changed_document_replaces_its_chunks(built, docs, minilm):
    index_dir, first = built
    changed = Document(
        id_=docs[1].doc_id, text=docs[1].text + "\n\nAppendix: zebras graze on the savanna.", metadata=docs[1].metadata
    )
    report = ingest([docs[0], changed], index_dir, minilm)
    assert (report.unchanged, report.replaced, report.added) == (1, 1, 0)
    with FaissStore.open(index_dir) as store:
        assert store.num_documents == len(docs) and store.version == 2
        assert store.num_nodes == first.chunks_total - report.chunks_removed + report.chunks_added
        texts = [node.text for node in store.get_nodes(store.documents[changed.doc_id].node_ids)]
        assert any("zebras" in text for text in texts)
    top = TempScaleRetriever.from_dir(index_dir, minilm, similarity_top_k=1).retrieve("zebras on the savanna")
    assert top[0].node.ref_doc_id == changed.doc_id and "zebras" in top[0].node.text


def test_delete_by_document_id(built, docs, minilm):
    index_dir, first = built
    removed, version = delete_documents(index_dir, [docs[2].doc_id])
    assert version == 2 and removed > 0
    retriever = TempScaleRetriever.from_dir(index_dir, minilm, similarity_top_k=50)
    hits = retriever.retrieve(docs[2].text[:200])
    assert docs[2].doc_id not in {hit.node.ref_doc_id for hit in hits}
    assert retriever.store.num_nodes == first.chunks_total - removed
    with pytest.raises(KeyError, match="no document with id 'dist:nope'"):
        delete_documents(index_dir, ["dist:nope"])


def test_retriever_returns_nodes_with_tau_and_finds_a_chunk_by_its_text(built, minilm):
    index_dir, _ = built
    retriever = TempScaleRetriever.from_dir(index_dir, similarity_top_k=3)  # embedding built from the manifest
    store = retriever.store
    for record in list(store.documents.values())[:3]:
        node = store.get_nodes(record.node_ids[-1:])[0]
        hits = retriever.retrieve(embedded_text(node))  # the text the chunk was embedded as
        assert hits[0].node.text == node.text and hits[0].score == pytest.approx(1.0, abs=1e-3)
        assert hits[0].node.ref_doc_id == record.doc_id and hits[0].node.metadata[TAU_KEY] == 1.0
        assert hits[0].score >= hits[1].score >= hits[2].score
    assert retriever.last_query_tau == 1.0


def test_filters_on_doc_id_and_file_name(built, docs, minilm):
    index_dir, _ = built
    query = docs[0].text[:300]
    by_id = TempScaleRetriever.from_dir(index_dir, minilm, similarity_top_k=4, doc_ids=[docs[3].doc_id])
    assert {hit.node.ref_doc_id for hit in by_id.retrieve(query)} == {docs[3].doc_id}
    name = docs[4].metadata["file_name"]
    filters = MetadataFilters(filters=[MetadataFilter(key="file_name", value=name)])
    by_name = TempScaleRetriever(by_id.store, minilm, similarity_top_k=4, filters=filters)
    assert {hit.node.metadata["file_name"] for hit in by_name.retrieve(query)} == {name}
    excluded = MetadataFilters(
        filters=[MetadataFilter(key="doc_id", value=[docs[0].doc_id, docs[1].doc_id], operator=FilterOperator.NIN)]
    )
    hits = TempScaleRetriever(by_id.store, minilm, similarity_top_k=10, filters=excluded).retrieve(query)
    assert hits and not {hit.node.ref_doc_id for hit in hits} & {docs[0].doc_id, docs[1].doc_id}
    after = MetadataFilters(filters=[MetadataFilter(key="file_name", value=name, operator=FilterOperator.GTE)])
    hits = TempScaleRetriever(by_id.store, minilm, similarity_top_k=50, filters=after).retrieve(query)
    assert hits and all(hit.node.metadata["file_name"] >= name for hit in hits)
    with pytest.raises(MetadataFilterError, match="IN needs a list"):  # refused before any query
        TempScaleRetriever(
            by_id.store,
            minilm,
            filters=MetadataFilters(filters=[MetadataFilter(key="file_name", value="x", operator=FilterOperator.IN)]),
        )


def test_retriever_queries_on_onnx_by_default_and_falls_back_to_torch(built, monkeypatch):
    index_dir, _ = built
    default = TempScaleRetriever.from_dir(index_dir, similarity_top_k=3)
    on_torch = TempScaleRetriever.from_dir(index_dir, similarity_top_k=3, backend="torch")
    assert default.embedding.backend == "onnx" and on_torch.embedding.backend == "torch"
    query = "What does this package do?"
    ids = [[hit.node.node_id for hit in retriever.retrieve(query)] for retriever in (default, on_torch)]
    assert ids[0] == ids[1]

    def no_graph(*args, **kwargs):
        raise OnnxBackendError("cannot export this model")

    monkeypatch.setattr("tempscale_index.embedding.OnnxEncoder", no_graph)
    with pytest.warns(RuntimeWarning, match="queries run on PyTorch: cannot export this model"):
        fallback = TempScaleRetriever.from_dir(index_dir, similarity_top_k=3)
    assert fallback.embedding.backend == "torch"
    with pytest.raises(OnnxBackendError):  # asked for explicitly: no silent fallback
        TempScaleRetriever.from_dir(index_dir, similarity_top_k=3, backend="onnx")


def test_query_engine_answers_with_a_user_llm(built):
    index_dir, _ = built
    engine = TempScaleRetriever.from_dir(index_dir, similarity_top_k=2).as_query_engine(llm=MockLLM(max_tokens=8))
    response = engine.query("What does this package do?")
    assert len(response.source_nodes) == 2 and TAU_KEY in response.source_nodes[0].node.metadata


def test_an_index_refuses_another_model_configuration(built):
    index_dir, _ = built
    other = TempScaleEmbedding(document_temperature=1.0, query_temperature=0.8)
    with pytest.raises(IndexConfigMismatchError, match="query_temperature"):
        TempScaleRetriever.from_dir(index_dir, other)
    with pytest.raises(IndexConfigMismatchError):
        ingest([Document(id_="x", text="more text")], index_dir, other)


@pytest.mark.parametrize("index_type", ["HNSW32", "IVF4,Flat"])
def test_other_index_types_ingest_update_and_answer(tmp_path, docs, minilm, index_type):
    index_dir = tmp_path / "index"
    ingest(docs, index_dir, minilm, index_factory=index_type, chunk_size=64, train_size=16)
    delete_documents(index_dir, [docs[0].doc_id])
    retriever = TempScaleRetriever.from_dir(index_dir, minilm, similarity_top_k=1)
    assert retriever.store.index_factory == index_type and retriever.store.index.ntotal == retriever.store.num_nodes
    node = retriever.store.get_nodes(retriever.store.documents[docs[3].doc_id].node_ids[:1])[0]
    assert retriever.retrieve(node.text)[0].node.text == node.text


def test_ingestion_streams_in_bounded_batches(tmp_path, minilm, monkeypatch):
    """Never more than one batch of chunks in flight, however many documents come through the generator."""
    sizes = []
    original = TempScaleEmbedding.encode

    def spy(self, texts, *args, **kwargs):
        sizes.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(TempScaleEmbedding, "encode", spy)
    base = package_docs(count=1, max_chars=700)[0].text

    def stream():
        for i in range(40):
            yield Document(id_=f"doc-{i}", text=f"Part {i}. {base}")

    store = FaissStore.open(tmp_path / "index", minilm_config(minilm), writable=True, create=True)
    with store:
        pipeline = FaissIngestor(store, minilm, chunk_size=48, chunk_overlap=0, batch_chunks=20)
        per_doc = len(pipeline._split([Document(id_="probe", text=f"Part 0. {base}")]))
        report = pipeline.run(stream())
    assert report.documents_total == 40 and report.chunks_total == sum(sizes)
    assert len(sizes) > 5 and max(sizes) < 20 + per_doc


def minilm_config(embedding):

    return embedding.index_config()


def test_files_folders_unreadable_and_empty_input(tmp_path, docs, minilm):
    corpus = tmp_path / "corpus"
    written = write_corpus(corpus, docs[:2])
    (corpus / "binary.txt").write_bytes(b"\xff\xfe\x00\x81 not text")
    (corpus / ".hidden.md").write_text("hidden files are left out")
    with pytest.warns(UserWarning, match="skipped unreadable file .*binary.txt"):
        report = ingest(corpus, tmp_path / "index", minilm, chunk_size=128)
    assert report.added == 2 and [skip.path for skip in report.skipped_files] == [str(corpus / "binary.txt")]
    with FaissStore.open(tmp_path / "index") as store:
        assert set(store.documents) == {str(p.resolve()) for p in written}
        assert {r.metadata["file_name"] for r in store.documents.values()} == {p.name for p in written}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("   \n")
    with pytest.raises(EmptyCorpusError, match="no text to ingest"):
        ingest(empty, tmp_path / "other", minilm)
    with pytest.raises(FileNotFoundError, match="path not found"):
        ingest(tmp_path / "missing", tmp_path / "other", minilm)


def test_chunking_cannot_change_under_an_existing_index(built, docs, minilm):
    index_dir, _ = built
    with pytest.raises(ValueError, match="chunked with chunk_size=96"):
        ingest(docs, index_dir, minilm, chunk_size=128)
    with pytest.raises(ValueError, match="must be between 1 and"):
        ingest(docs, index_dir.parent / "new", minilm, chunk_size=chunk_token_budget(minilm) + 1)


def test_installed_docs_corpus_is_there():
    docs = list(iter_installed_docs())
    assert len(docs) >= 10 and all(doc.doc_id.startswith("dist:") and len(doc.text) >= 200 for doc in docs)
    assert len({doc.doc_id for doc in docs}) == len(docs)
