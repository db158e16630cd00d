"""TempScaleFaissVectorStore in LlamaIndex's own flows, end to end with the bundled MiniLM on a few small
documents: build → persist → reopen → query → insert → delete_ref_doc → persist → reopen; an IngestionPipeline
with a docstore; metadata filters through the index's retriever; one format with `tempscale-index ingest`; a
kill during persist()."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.index_config import IndexConfigMismatchError
from tempscale_index.node_metadata import TAU_KEY, TOKENS_KEY
from tempscale_index.pipeline import TempScaleRetriever, ingest
from tempscale_index.schedules import ConstantSchedule, LogLinearSchedule
from tempscale_index.store import FaissStore, IndexExistsError, IndexNotFoundError
from tempscale_index.store.vector_store import TempScaleFaissVectorStore
from tests.pipeline_helpers import package_docs
from tests.test_crash_safety import AFTER_CURRENT, BEFORE_CURRENT, CRASH_POINT_ENV

SPLITTER = SentenceSplitter(chunk_size=96, chunk_overlap=16)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return package_docs(count=4, max_chars=900)


def assert_tau_everywhere(hits) -> None:
    assert hits
    for hit in hits:
        assert isinstance(hit.node.metadata[TAU_KEY], float) and hit.node.metadata[TOKENS_KEY] > 0


def build(path, docs, embed_model) -> VectorStoreIndex:
    store = TempScaleFaissVectorStore.create(path, embed_model=embed_model)
    context = StorageContext.from_defaults(vector_store=store)
    return VectorStoreIndex.from_documents(
        docs, storage_context=context, embed_model=embed_model, transformations=[SPLITTER]
    )


def test_llamaindex_round_trip_build_persist_reopen_insert_delete(tmp_path, docs, minilm):
    path = tmp_path / "index"
    index = build(path, docs[:3], minilm)
    index.storage_context.persist(persist_dir=str(path))
    index.vector_store.close()

    store = TempScaleFaissVectorStore.from_persist_dir(str(path))
    assert set(store.client.documents) == {doc.doc_id for doc in docs[:3]}
    embed_model = store.embed_model  # rebuilt from the manifest
    assert embed_model.index_config() == minilm.index_config()
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model, transformations=[SPLITTER])
    target = store.get_nodes()[2]
    hits = index.as_retriever(similarity_top_k=3).retrieve(target.get_content(metadata_mode="embed"))
    assert hits[0].node.node_id == target.node_id and hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert_tau_everywhere(hits)

    index.insert(docs[3])
    index.delete_ref_doc(docs[0].doc_id)
    assert docs[0].doc_id not in store.client.documents and docs[3].doc_id in store.client.documents
    store.persist()
    store.close()

    reopened = TempScaleFaissVectorStore.from_persist_dir(path, embed_model=minilm)
    assert set(reopened.client.documents) == {doc.doc_id for doc in docs[1:]}
    retriever = VectorStoreIndex.from_vector_store(reopened, embed_model=minilm).as_retriever(similarity_top_k=20)
    hits = retriever.retrieve(docs[3].text[:200])
    assert hits[0].node.ref_doc_id == docs[3].doc_id
    assert docs[0].doc_id not in {hit.node.ref_doc_id for hit in hits}
    assert_tau_everywhere(hits)


def test_the_faiss_vector_store_persistence_flow_works_unchanged(tmp_path, docs, minilm):
    """FaissVectorStore's documented flow: persist the storage context into one folder, then rebuild it from
    ``from_persist_dir`` plus ``persist_dir`` and ``load_index_from_storage``."""
    path = str(tmp_path / "storage")
    index = build(path, docs[:2], minilm)
    index.storage_context.persist(persist_dir=path)
    index.vector_store.close()
    vector_store = TempScaleFaissVectorStore.from_persist_dir(path)
    storage_context = StorageContext.from_defaults(vector_store=vector_store, persist_dir=path)
    index = load_index_from_storage(storage_context, embed_model=minilm, transformations=[SPLITTER])
    index.insert(docs[2])
    index.storage_context.persist(persist_dir=path)
    hits = index.as_retriever(similarity_top_k=1).retrieve(docs[2].text[:200])
    assert hits[0].node.ref_doc_id == docs[2].doc_id
    assert FaissStore.open(path).num_documents == 3


def test_one_format_with_the_cli_ingest_both_ways(tmp_path, docs, minilm, caplog):
    ingested = tmp_path / "ingested"
    ingest(docs[:2], ingested, minilm, chunk_size=96, chunk_overlap=16)
    store = TempScaleFaissVectorStore.from_persist_dir(ingested, embed_model=minilm)
    node = store.get_nodes()[0]
    hits = VectorStoreIndex.from_vector_store(store, embed_model=minilm).as_retriever().retrieve(node.text)
    assert hits[0].node.node_id == node.node_id and hits[0].node.metadata["distribution"]
    store.close()

    made = tmp_path / "made"
    index = build(made, docs[2:], minilm)
    with caplog.at_level(logging.WARNING):
        index.vector_store.persist(persist_path=str(tmp_path / "elsewhere" / "default__vector_store.json"))
    assert "commits there" in caplog.text and not (tmp_path / "elsewhere").exists()
    node = index.vector_store.client.get_nodes([0])[0]
    index.vector_store.close()
    assert TempScaleRetriever.from_dir(made, minilm, similarity_top_k=1).retrieve(node.text)[0].node.text == node.text

    reader = TempScaleFaissVectorStore.from_persist_dir(made, embed_model=minilm)  # read-only: holds no lock
    report = ingest(docs[:1], made, minilm)  # so the CLI's ingest can extend the index meanwhile
    assert report.documents_total == 3
    question = VectorStoreQuery(query_embedding=minilm.get_query_embedding(docs[0].text[:300]), similarity_top_k=1)
    assert reader.query(question).nodes[0].ref_doc_id == docs[0].doc_id  # the reader moved to the new version


def test_tau_follows_the_recorded_document_schedule(tmp_path, docs):
    schedule = LogLinearSchedule(short_tokens=16, short_tau=1.0, long_tokens=96, long_tau=0.8)
    embedding = TempScaleEmbedding(document_temperature=schedule, query_temperature=0.9)
    index = build(tmp_path / "index", docs[:2], embedding)
    nodes = index.vector_store.get_nodes()
    counts = embedding.token_counts([node.get_content(metadata_mode="embed") for node in nodes])
    assert [node.metadata[TAU_KEY] for node in nodes] == pytest.approx(schedule.taus(counts), abs=1e-6)
    assert len({node.metadata[TAU_KEY] for node in nodes}) > 1  # lengths differ, so τ differs
    index.vector_store.persist()
    index.vector_store.close()
    reopened = TempScaleFaissVectorStore.from_persist_dir(tmp_path / "index")
    assert reopened.embed_model.query_temperature == ConstantSchedule(0.9)
    assert reopened.embed_model.document_temperature.to_dict() == schedule.to_dict()


def test_another_model_configuration_is_refused(tmp_path, docs, minilm):
    index = build(tmp_path / "index", docs[:1], minilm)
    index.vector_store.persist()
    other = TempScaleEmbedding(document_temperature=0.7, query_temperature=1.0)
    with pytest.raises(IndexConfigMismatchError, match="document_temperature"):
        TempScaleFaissVectorStore.from_persist_dir(tmp_path / "index", embed_model=other)
    foreign = other(SPLITTER([docs[1]]))  # nodes embedded at τ = 0.7 by the embedding as a transformation
    with pytest.raises(IndexConfigMismatchError, match=r"τ=0\.7"):
        index.vector_store.add(foreign)
    renamed = TextNode(text="x", embedding=[0.0] * 384, metadata={"tempscale_model": "another/model"})
    with pytest.raises(IndexConfigMismatchError, match="model_name"):
        index.vector_store.add([renamed])
    with pytest.raises(IndexExistsError):
        TempScaleFaissVectorStore.create(tmp_path / "index", embed_model=minilm)
    with pytest.raises(IndexNotFoundError):
        TempScaleFaissVectorStore.from_persist_dir(tmp_path / "nothing")


def test_ingestion_pipeline_with_a_docstore_adds_nothing_the_second_time(tmp_path, docs, minilm):
    store = TempScaleFaissVectorStore.create(tmp_path / "index", embed_model=minilm)
    for strategy in (DocstoreStrategy.UPSERTS, DocstoreStrategy.DUPLICATES_ONLY):
        store.clear()
        pipeline = IngestionPipeline(
            transformations=[SPLITTER, minilm],
            vector_store=store,
            docstore=SimpleDocumentStore(),
            docstore_strategy=strategy,
        )
        first = pipeline.run(documents=docs[:3])
        assert first and set(store.client.documents) == {doc.doc_id for doc in docs[:3]}
        count = store.client.num_nodes
        assert pipeline.run(documents=docs[:3]) == [] and store.client.num_nodes == count
    changed = Document(id_=docs[0].doc_id, text="An entirely new text about zebras.", metadata=docs[0].metadata)
    pipeline.docstore_strategy = DocstoreStrategy.UPSERTS
    assert len(pipeline.run(documents=[changed, *docs[1:3]])) == 1  # only the changed document is re-embedded
    texts = [
        node.text
        for node in store.get_nodes(
            filters=MetadataFilters(filters=[MetadataFilter(key="doc_id", value=docs[0].doc_id)])
        )
    ]
    assert texts == ["An entirely new text about zebras."]
    store.persist()
    assert FaissStore.open(tmp_path / "index").num_documents == 3


def test_metadata_filters_through_the_index_retriever_and_node_operations(tmp_path, docs, minilm):
    index = build(tmp_path / "index", docs, minilm)
    store = index.vector_store
    names = [doc.metadata["distribution"] for doc in docs]
    only = MetadataFilters(filters=[MetadataFilter(key="distribution", value=names[2])])
    hits = index.as_retriever(similarity_top_k=4, filters=only).retrieve(docs[0].text[:200])
    assert hits and {hit.node.metadata["distribution"] for hit in hits} == {names[2]}
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="distribution", value=names[:2], operator=FilterOperator.IN),
            MetadataFilter(key="file_name", value="nope", operator=FilterOperator.EQ),
        ],
        condition="or",
    )
    hits = index.as_retriever(similarity_top_k=50, filters=either).retrieve("installation")
    assert {hit.node.ref_doc_id for hit in hits} == {docs[0].doc_id, docs[1].doc_id}
    assert_tau_everywhere(hits)

    chosen = [node.node_id for node in store.get_nodes()[:3]]
    assert [node.node_id for node in store.get_nodes(chosen[::-1])] == chosen[::-1]
    vector = store.get_nodes(chosen[:1])[0]
    result = store.query(
        VectorStoreQuery(
            query_embedding=minilm.get_text_embedding(vector.text), node_ids=chosen[1:], similarity_top_k=5
        )
    )
    assert sorted(result.ids) == sorted(chosen[1:])
    before = store.client.num_nodes
    store.delete_nodes(chosen[:2])  # part of one document: the rest of it stays searchable
    assert store.client.num_nodes == before - 2 and not store.get_nodes(chosen[:2])
    assert store.get_nodes(chosen[2:]) and docs[0].doc_id in store.client.documents
    store.delete_nodes(filters=only)
    assert docs[2].doc_id not in store.client.documents


def test_async_twins(tmp_path, docs, minilm):
    index = build(tmp_path / "index", docs[:2], minilm)
    store = index.vector_store

    async def flow() -> None:
        await index.ainsert(docs[2])
        hits = await index.as_retriever(similarity_top_k=2).aretrieve(docs[2].text[:150])
        assert hits[0].node.ref_doc_id == docs[2].doc_id
        assert_tau_everywhere(hits)
        await index.adelete_ref_doc(docs[2].doc_id)
        await store.adelete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="doc_id", value=docs[1].doc_id)]))
        assert {node.ref_doc_id for node in await store.aget_nodes()} == {docs[0].doc_id}
        await store.aclear()
        result = await store.aquery(VectorStoreQuery(query_embedding=[0.1] * 384, similarity_top_k=3))
        assert result.ids == []

    asyncio.run(flow())


DRIVER = """
import sys
import numpy as np
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from tempscale_index.store.vector_store import TempScaleFaissVectorStore
store = TempScaleFaissVectorStore.from_persist_dir(sys.argv[1])
rng = np.random.default_rng(0)
nodes = []
for number in range(20):
    vector = rng.standard_normal(store.config.dimension)
    node = TextNode(text=f"new chunk {number}", embedding=(vector / np.linalg.norm(vector)).tolist(),
                    metadata={"tempscale_tau": 1.0, "tempscale_tokens": 4})
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="new-doc")
    nodes.append(node)
store.add(nodes)
store.delete(sys.argv[2])
store.persist()
"""


@pytest.mark.parametrize("point", [BEFORE_CURRENT[1], AFTER_CURRENT[0]])
def test_a_kill_during_persist_leaves_a_loadable_version(tmp_path, docs, minilm, point):
    path = tmp_path / "index"
    build(path, docs[:2], minilm).vector_store.persist()
    with FaissStore.open(path) as store:
        before = (store.version, set(store.documents), store.num_nodes)
        deleted = len(store.documents[docs[0].doc_id].node_ids)
    environment = {**os.environ, CRASH_POINT_ENV: point, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, str(path), docs[0].doc_id],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == -9, process.stderr  # killed at the crash point
    store = TempScaleFaissVectorStore.from_persist_dir(path, embed_model=minilm)
    with FaissStore.open(path) as check:
        state = (check.version, set(check.documents), check.num_nodes)
    if point in BEFORE_CURRENT:
        assert state == before
    else:
        assert state == (before[0] + 1, {docs[1].doc_id, "new-doc"}, before[2] - deleted + 20)
    hits = VectorStoreIndex.from_vector_store(store, embed_model=minilm).as_retriever().retrieve(docs[1].text[:100])
    assert hits[0].node.ref_doc_id == docs[1].doc_id
    assert_tau_everywhere(hits)
