"""``document_temperature="auto"``: decided exactly once per entry point, from enough of the corpus, recorded,
and never re-decided; too little (a smoke test, text-only calls) leaves it pending, never final.

A counting wrapper around the real selector counts the decisions. It hands back the real Selection with one
change: a distinctive schedule (τ = 0.85 above 64 tokens), decided, so that a chunk embedded at any other τ (a
default, or a second decision) shows up in its recorded ``tempscale_tau`` and in the manifest.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex

from tempscale_index import selection as selection_module
from tempscale_index.chunking import model_token_splitter
from tempscale_index.embedding import AUTO, TempScaleEmbedding
from tempscale_index.index_config import IndexConfig
from tempscale_index.node_metadata import TAU_KEY, TOKENS_KEY
from tempscale_index.pipeline.ingest import ingest
from tempscale_index.schedules import PiecewiseSchedule, Schedule
from tempscale_index.store import FaissStore
from tempscale_index.store.vector_store import TempScaleFaissVectorStore

CHOSEN = PiecewiseSchedule([64], [1.0, 0.85])


class CountingSelector:
    """The real ``select_document_schedule``, counted, its groups kept, its schedule made distinctive."""

    def __init__(self) -> None:
        self.calls: list[list[str] | None] = []
        self.sizes: list[int] = []  # texts per decision
        self.delay = 0.0  # seconds: a slow decision widens the window a race would need
        self._real = selection_module.select_document_schedule

    def __call__(self, embedding, texts, groups=None, **kwargs):
        self.calls.append(None if groups is None else list(groups))
        self.sizes.append(len(texts))
        time.sleep(self.delay)
        return replace(self._real(embedding, texts, groups, **kwargs), schedule=CHOSEN, pending=False)


@pytest.fixture
def selector(monkeypatch) -> CountingSelector:
    counting = CountingSelector()
    monkeypatch.setattr(selection_module, "select_document_schedule", counting)
    return counting


@pytest.fixture(scope="module")
def docs(small_qmsum_dir: Path) -> list[Document]:
    documents = []
    for file in sorted(small_qmsum_dir.glob("*.json")):
        turns = json.loads(file.read_text())["meeting_transcripts"]
        text = "\n".join(f"{turn['speaker']}: {turn['content']}" for turn in turns)
        documents.append(Document(id_=file.stem, text=text[:6000]))
    return documents


def _assert_recorded(nodes, schedule: Schedule) -> None:
    assert nodes
    for node in nodes:
        assert node.metadata[TAU_KEY] == pytest.approx(schedule.tau(node.metadata[TOKENS_KEY]), abs=1e-6)
    assert any(node.metadata[TAU_KEY] == pytest.approx(0.85) for node in nodes)


def _stored_nodes(index_dir: Path):
    store = FaissStore.open(index_dir)
    try:
        return store.get_nodes([int(i) for record in store.documents.values() for i in record.node_ids])
    finally:
        store.close()


def test_a_transformation_call_decides_once_from_its_nodes_grouped_by_document(selector, docs):
    embedding = TempScaleEmbedding()
    assert embedding.document_temperature == AUTO and not embedding.auto_resolved
    assert embedding.model_dump()["document_temperature"] == AUTO
    nodes = model_token_splitter(embedding, chunk_size=128)(docs)
    embedding(nodes[:10])
    embedding(nodes[10:])
    assert len(selector.calls) == 1
    assert set(selector.calls[0]) == {doc.doc_id for doc in docs[: len(set(selector.calls[0]))]}
    assert embedding.auto_resolved and embedding.selection.schedule == CHOSEN
    assert embedding.model_dump()["document_temperature"] == CHOSEN.to_dict()
    assert embedding.index_config().document_temperature_selection["reason"]
    _assert_recorded(nodes, CHOSEN)


def test_a_smoke_test_call_does_not_decide_and_says_it_is_pending(selector, docs, minilm, caplog):
    embedding = TempScaleEmbedding()
    with caplog.at_level("WARNING", logger="tempscale_index.auto_schedule"):
        vector = embedding.get_text_embedding("hello")
    assert embedding.auto_pending and not embedding.auto_resolved and not selector.calls
    assert vector == pytest.approx(minilm.get_text_embedding("hello"), abs=1e-6)  # τ = 1, provisionally
    assert "pending" in caplog.text and "τ = 1 provisionally" in caplog.text
    nodes = model_token_splitter(embedding, chunk_size=128)(docs)
    embedding(nodes)  # nodes of several documents: now it decides
    assert len(selector.calls) == 1 and embedding.schedule_for("document") == CHOSEN
    _assert_recorded(nodes, CHOSEN)


def test_text_only_calls_never_decide_however_many_texts(selector, docs):
    """Texts carry no document ids, so the documents cannot be counted: 'every text a document' would bypass
    the 8-documents rule."""
    embedding = TempScaleEmbedding()
    embedding.get_query_embedding("what did they decide?")
    assert embedding.get_text_embedding_batch([]) == [] and embedding.auto_pending
    texts = [doc.text[i : i + 700] for doc in docs for i in range(0, 2800, 700)]
    import asyncio

    asyncio.run(embedding.aget_text_embedding_batch(texts))
    assert len(embedding.get_text_embedding_batch(texts)) == len(texts)
    assert not selector.calls and embedding.auto_pending
    with pytest.raises(RuntimeError, match="calibrate"):
        embedding.schedule_for("document")
    with pytest.raises(ValueError, match="calibrate"):
        embedding.index_config()
    assert embedding.calibrate(texts).schedule == CHOSEN  # asked explicitly: each text a whole document
    assert embedding.calibrate(texts) is embedding.selection and len(selector.calls) == 1


def test_too_few_documents_stay_pending_and_an_index_of_them_settles_tau_one(docs, tmp_path):
    embedding = TempScaleEmbedding()
    nodes = model_token_splitter(embedding, chunk_size=128)(docs[:2])
    embedding(nodes)  # the real selector: two documents are too few
    assert embedding.auto_pending and embedding.selection.pending
    assert all(node.metadata[TAU_KEY] == 1.0 for node in nodes)  # what they got, recorded
    ingest(docs[:2], tmp_path / "index", embedding, chunk_size=128)
    config = IndexConfig.from_manifest(FaissStore.read_manifest(tmp_path / "index"))
    assert config.document_temperature == {"type": "constant", "value": 1.0}
    assert config.document_temperature_selection["reason"].startswith("τ = 1 for this index: auto pending")


def test_an_explicit_tau_never_calls_the_selector(selector, docs):
    embedding = TempScaleEmbedding(document_temperature=0.9)
    embedding.get_text_embedding_batch([doc.text[:500] for doc in docs])
    assert not selector.calls and not embedding.auto_resolved and embedding.selection is None
    with pytest.raises(ValueError, match="not 'auto'"):
        embedding.calibrate(["some text"])


def test_four_threads_embedding_first_decide_once(selector, docs):
    embedding = TempScaleEmbedding()
    nodes = model_token_splitter(embedding, chunk_size=128)(docs)
    selector.delay = 0.3
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def first_call(position: int) -> None:
        try:
            barrier.wait()
            embedding(nodes[position::4])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(selector.calls) == 1
    _assert_recorded(nodes, CHOSEN)


def test_the_faiss_pipeline_decides_before_the_first_batch_and_reuses_it(selector, docs, tmp_path):
    index_dir = tmp_path / "index"
    ingest(docs[:2], index_dir, TempScaleEmbedding(), chunk_size=128, batch_chunks=4)
    assert len(selector.calls) == 1 and set(selector.calls[0]) == {docs[0].doc_id, docs[1].doc_id}
    assert selector.sizes[0] == len(_stored_nodes(index_dir)) > 4  # every chunk, not the first batch of 4
    config = IndexConfig.from_manifest(FaissStore.read_manifest(index_dir))
    assert config.document_temperature == CHOSEN.to_dict()
    assert config.document_temperature_selection["schedule"] == CHOSEN.to_dict()
    _assert_recorded(_stored_nodes(index_dir), CHOSEN)

    again = TempScaleEmbedding()  # adding to the index adopts its schedule: no second decision
    ingest(docs[2:], index_dir, again)
    assert len(selector.calls) == 1 and again.auto_resolved and again.selection is None
    assert again.schedule_for("document") == CHOSEN
    _assert_recorded(_stored_nodes(index_dir), CHOSEN)
    reopened = TempScaleFaissVectorStore(index_dir, embed_model=TempScaleEmbedding())
    assert len(selector.calls) == 1 and reopened.config.document_temperature == CHOSEN.to_dict()


def test_our_vector_store_records_what_vector_store_index_decided(selector, docs, tmp_path):
    embedding = TempScaleEmbedding()
    store = TempScaleFaissVectorStore.create(tmp_path / "index", embed_model=embedding)
    context = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(docs, storage_context=context, embed_model=embedding)
    store.persist()
    assert len(selector.calls) == 1 and set(selector.calls[0]) == {doc.doc_id for doc in docs}
    assert store.config.document_temperature == CHOSEN.to_dict()
    assert FaissStore.read_manifest(tmp_path / "index")["config"]["document_temperature"] == CHOSEN.to_dict()
    _assert_recorded(_stored_nodes(tmp_path / "index"), CHOSEN)
    assert index.as_retriever(similarity_top_k=2).retrieve("the remote control")


def test_a_connector_creates_its_collection_after_deciding_and_reuses_it(selector, docs, tmp_path):
    pytest.importorskip("lancedb")
    pytest.importorskip("llama_index.vector_stores.lancedb")
    from tempscale_index.connectors.lancedb import LanceDBConnector

    connector = LanceDBConnector("meetings", uri=str(tmp_path / "lancedb"))
    connector.attach(TempScaleEmbedding())
    assert connector.load_config() is None  # not created before the first nodes decide
    connector.add_documents(docs[:2], chunk_size=128)
    assert len(selector.calls) == 1 and set(selector.calls[0]) == {docs[0].doc_id, docs[1].doc_id}
    assert connector.load_config().document_temperature == CHOSEN.to_dict()
    connector.close()

    reopened = LanceDBConnector("meetings", uri=str(tmp_path / "lancedb"))
    embedding = reopened.attach(TempScaleEmbedding())
    reopened.add_documents(docs[2:], chunk_size=128)
    assert len(selector.calls) == 1 and embedding.schedule_for("document") == CHOSEN
    reopened.close()


def test_the_ray_job_decides_once_on_the_driver_and_workers_embed_with_it(selector, docs, tmp_path):
    ray = pytest.importorskip("ray")
    from tempscale_index.batch import FaissShardSink, run_batch_job
    from tempscale_index.batch.job import calibrate_on_driver

    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"id": doc.doc_id, "text": doc.text}) + "\n" for doc in docs))
    embedding = TempScaleEmbedding()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        calibrate_on_driver(embedding, [source], chunk_size=128)
        assert len(selector.calls) == 1 and set(selector.calls[0]) == {doc.doc_id for doc in docs}
        sink = FaissShardSink(tmp_path / "index", embedding.index_config())
        run_batch_job([source], sink, workers=1, chunk_size=128, show_progress=False)
    finally:
        ray.shutdown()
    assert len(selector.calls) == 1
    assert FaissStore.read_manifest(tmp_path / "index")["config"]["document_temperature"] == CHOSEN.to_dict()
    _assert_recorded(_stored_nodes(tmp_path / "index"), CHOSEN)


def test_querying_an_index_with_a_fresh_auto_embedding_adopts_its_schedule(selector, docs, tmp_path):
    from tempscale_index.pipeline.retriever import TempScaleRetriever

    ingest(docs[:1], tmp_path / "index", TempScaleEmbedding(document_temperature=CHOSEN), chunk_size=128)
    retriever = TempScaleRetriever.from_dir(tmp_path / "index", TempScaleEmbedding())
    assert retriever.retrieve("the remote control") and not selector.calls
    assert retriever.embedding.schedule_for("document") == CHOSEN


def test_the_async_node_path_decides_once_from_its_nodes(selector, docs):
    import asyncio

    embedding = TempScaleEmbedding(embed_batch_size=1)
    nodes = model_token_splitter(embedding, chunk_size=128)(docs[:2])
    asyncio.run(embedding.acall(nodes))
    assert selector.sizes == [len(nodes)] and set(selector.calls[0]) == {docs[0].doc_id, docs[1].doc_id}
    _assert_recorded(nodes, CHOSEN)
