"""TempScaleFaissVectorStore against what LlamaIndex's own vector-store tests check (our code, their cases).

Cases follow llama-index-core's ``tests/vector_stores/test_simple.py`` (top-k order, every filter operator, AND / OR /
NOT, node-id and document restrictions, delete, pickle), ``test_metadata_filters.py`` (nested filters), and the
FAISS, Qdrant and Chroma integration suites (image and index nodes, embeddings on returned nodes, filters with
value types, filter-only queries, MMR, ``from_persist_path``). Only construction is adapted: each case runs on a
Flat, an HNSW and an IVF store, without persisting first (an IVF index is untrained until ``persist``), and the
filter cases run both with each node in its own document and with all nodes in one document (per-chunk metadata).
Embeddings are explicit unit vectors of the store's dimension; the bundled MiniLM only counts tokens for τ.
"""

from __future__ import annotations

import asyncio
import copy
import pickle

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, IndexNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from tempscale_index.embedding import TAU_KEY
from tempscale_index.index_config import IndexConfigMismatchError
from tempscale_index.store import IndexNotFoundError, StoreError
from tempscale_index.store.filters import MetadataFilterError
from tempscale_index.store.vector_store import TempScaleFaissVectorStore

INDEX_TYPES = ["Flat", "HNSW32,Flat", "IVF1,Flat"]
A, C2, C3 = "node-weight-1-rank-a", "node-weight-2-rank-c", "node-weight-3-rank-c"


def unit(*values: float, dimension: int = 384) -> list[float]:
    vector = np.zeros(dimension, dtype=np.float32)
    vector[: len(values)] = values
    return (vector / np.linalg.norm(vector)).tolist()


def sample_nodes(one_document: bool) -> list[TextNode]:
    """test_simple.py's three nodes; with ``one_document`` they are chunks of one document."""
    rows = [
        (A, (1.0, 0.0), {"weight": 1.0, "rank": "a", "quality": ["medium", "high"], "identifier": "6FTR78Yun"}),
        (C2, (0.0, 1.0), {"weight": 2.0, "rank": "c", "quality": ["medium"], "identifier": "6FTR78Ygl"}),
        (C3, (1.0, 1.0), {"weight": 3.0, "rank": "c", "quality": ["low", "medium", "high"], "identifier": "6FTR78Ztl"}),
    ]
    return [
        TextNode(
            text="lorem ipsum",
            id_=node_id,
            embedding=unit(*vector),
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc" if one_document else f"test-{i}")},
            metadata=metadata,
        )
        for i, (node_id, vector, metadata) in enumerate(rows)
    ]


@pytest.fixture(params=INDEX_TYPES)
def store(request, tmp_path, minilm):
    created = TempScaleFaissVectorStore.create(tmp_path / "index", embed_model=minilm, index_type=request.param)
    yield created
    created.close()


@pytest.fixture(params=["own documents", "one document"])
def filled(request, store):
    store.add(sample_nodes(request.param == "one document"))
    return store


def ids_of(store, filters=None, k=3, **query) -> list[str]:
    """Ids of the top ``k`` for a query nearest C3, then A, then C2 (test_simple.py's [1, 1] ties A and C2)."""
    result = store.query(VectorStoreQuery(query_embedding=unit(1.0, 0.9), similarity_top_k=k, filters=filters, **query))
    return result.ids


def where(*filters, condition=FilterCondition.AND) -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=condition)


def test_query_without_filters_returns_all_rows_sorted_by_similarity(filled):
    ids = ids_of(filled)
    assert sorted(ids) == sorted([A, C2, C3]) and ids[0] == C3


def test_the_store_answers_before_persist_and_the_same_after(store):
    store.add(sample_nodes(one_document=False))
    assert store.client.num_nodes == 3 and len(ids_of(store)) == 3  # IVF: before any training
    before = ids_of(store)
    store.persist()
    assert ids_of(store) == before
    store.add([TextNode(text="late", id_="late", embedding=unit(1.0, 0.9))])  # after training: merged
    assert ids_of(store, k=1) == ["late"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (where(MetadataFilter(key="rank", value="c")), [C3, C2]),
        (where(MetadataFilter(key="rank", value="c"), MetadataFilter(key="weight", value=2.0)), [C2]),
        (where(MetadataFilter(key="weight", value=2), MetadataFilter(key="weight", value=3)), []),
        (where(MetadataFilter(key="unknown_field", value="c")), []),
        (where(MetadataFilter(key="rank", value="c"), MetadataFilter(key="weight", value=1.0), condition="or"), None),
        (where(MetadataFilter(key="rank", value="c"), MetadataFilter(key="weight", value=1.0)), []),
        (where(MetadataFilter(key="rank", value="a"), condition=FilterCondition.NOT), [C3, C2]),
        (where(MetadataFilter(key="weight", operator=FilterOperator.EQ, value=1.0)), [A]),
        (where(MetadataFilter(key="weight", operator=FilterOperator.NE, value=1.0)), [C3, C2]),
        (where(MetadataFilter(key="weight", operator=FilterOperator.GT, value=1.5)), [C3, C2]),
        (where(MetadataFilter(key="weight", operator=FilterOperator.GTE, value=1.0)), None),
        (where(MetadataFilter(key="weight", operator=FilterOperator.LT, value=1.1)), [A]),
        (where(MetadataFilter(key="weight", operator=FilterOperator.LTE, value=1.0)), [A]),
        (where(MetadataFilter(key="rank", operator=FilterOperator.IN, value=["a", "c"])), None),
        (where(MetadataFilter(key="rank", operator=FilterOperator.NIN, value=["c"])), [A]),
        (where(MetadataFilter(key="quality", operator=FilterOperator.CONTAINS, value="high")), [C3, A]),
        (where(MetadataFilter(key="identifier", operator=FilterOperator.TEXT_MATCH, value="6FTR78Y")), [A, C2]),
        (where(MetadataFilter(key="quality", operator=FilterOperator.ANY, value=["high", "low"])), [C3, A]),
        (where(MetadataFilter(key="quality", operator=FilterOperator.ALL, value=["medium", "high"])), [C3, A]),
        (where(MetadataFilter(key="missing", operator=FilterOperator.IS_EMPTY, value=None)), None),
        (  # test_metadata_filters.py: nested filters
            where(
                MetadataFilter(key="rank", value="c"),
                where(MetadataFilter(key="weight", value=2.0), MetadataFilter(key="weight", value=1.0), condition="or"),
            ),
            [C2],
        ),
    ],
)
def test_filters_match_each_chunk_as_the_simple_store_does(filled, filters, expected):
    ids = ids_of(filled, filters)
    if expected is None:  # every node, best first
        assert sorted(ids) == sorted([A, C2, C3]) and ids[0] == C3
    else:
        assert ids == expected


def test_filters_apply_top_k_node_ids_and_doc_ids(filled):
    rank_c = where(MetadataFilter(key="rank", value="c"))
    assert ids_of(filled, rank_c, k=1) == [C3]
    assert ids_of(filled, rank_c, node_ids=[C3]) == [C3]
    doc = filled.get_nodes([C2])[0].ref_doc_id
    assert ids_of(filled, rank_c, doc_ids=[doc]) == ([C3, C2] if doc == "doc" else [C2])
    assert ids_of(filled, where(MetadataFilter(key="doc_id", value=doc))) == ([C3, A, C2] if doc == "doc" else [C2])


def test_get_nodes_and_delete_nodes_see_each_chunk(filled):
    rank_c = where(MetadataFilter(key="rank", value="c"))
    assert {node.node_id for node in filled.get_nodes(filters=rank_c)} == {C2, C3}
    assert [node.node_id for node in filled.get_nodes([C3, A])] == [C3, A]
    filled.delete_nodes(filters=rank_c)
    assert [node.node_id for node in filled.get_nodes()] == [A] and ids_of(filled) == [A]


def test_per_chunk_metadata_survives_persist_and_reopen(store, tmp_path):
    store.add(sample_nodes(one_document=True))
    store.persist()
    store.close()
    reopened = TempScaleFaissVectorStore.from_persist_dir(tmp_path / "index")
    assert ids_of(reopened, where(MetadataFilter(key="weight", operator=FilterOperator.GTE, value=2))) == [C3, C2]
    assert reopened.get_nodes([A])[0].metadata["identifier"] == "6FTR78Yun"


def test_filters_with_types(store):
    """Qdrant's test_qdrant_filters_with_types: ints, floats and strings (MetadataFilter takes no booleans)."""
    values = [{"int": 1, "float": 1.5, "str": "a", "bool": True}, {"int": 2, "float": 2.5, "str": "b", "bool": False}]
    store.add(
        [
            TextNode(text=f"t{i}", id_=f"n{i}", embedding=unit(1.0, i), metadata=metadata, relationships=_source("d"))
            for i, metadata in enumerate(values)
        ]
    )
    assert ids_of(store, where(MetadataFilter(key="int", operator=FilterOperator.GT, value=1))) == ["n1"]
    assert ids_of(store, where(MetadataFilter(key="float", operator=FilterOperator.LTE, value=1.5))) == ["n0"]
    assert ids_of(store, where(MetadataFilter(key="str", value="b"))) == ["n1"]
    with pytest.raises(MetadataFilterError, match="needs a list"):
        ids_of(store, where(MetadataFilter(key="int", operator=FilterOperator.IN, value=1)))


def test_delete_removes_document_from_query_results(filled):
    doc = filled.get_nodes([C2])[0].ref_doc_id
    filled.delete(doc)
    assert ids_of(filled, k=2) == ([] if doc == "doc" else [C3, A])


def test_node_classes_and_their_fields_are_kept(store, tmp_path):
    image = ImageNode(text="a picture", image="aGVsbG8=", id_="image", embedding=unit(1.0), metadata={"page": 1})
    index_node = IndexNode(text="see the other index", index_id="other-index", id_="index", embedding=unit(0.0, 1.0))
    store.add([image, index_node])
    for source in (store, None):
        if source is None:
            store.persist()
            store.close()
            source = TempScaleFaissVectorStore.from_persist_dir(tmp_path / "index")
        found = {node.node_id: node for node in source.get_nodes()}
        assert isinstance(found["image"], ImageNode) and found["image"].image == "aGVsbG8="
        assert isinstance(found["index"], IndexNode) and found["index"].index_id == "other-index"
        hit = source.query(VectorStoreQuery(query_embedding=unit(1.0), similarity_top_k=1)).nodes[0]
        assert isinstance(hit, ImageNode)


def test_embeddings_on_returned_nodes_when_asked(filled, tmp_path):
    assert filled.get_nodes([A])[0].embedding is None  # not by default
    node = filled.get_nodes([A], return_embeddings=True)[0]
    assert node.embedding == pytest.approx(unit(1.0, 0.0), abs=1e-6)
    result = filled.query(VectorStoreQuery(query_embedding=unit(1.0, 1.0), similarity_top_k=1), return_embeddings=True)
    assert result.nodes[0].embedding == pytest.approx(unit(1.0, 1.0), abs=1e-6)
    filled.return_embeddings = True
    assert filled.get_nodes([C2])[0].embedding == pytest.approx(unit(0.0, 1.0), abs=1e-6)


def test_mmr_mode_trades_relevance_for_diversity(store):
    store.add(
        [
            TextNode(text="a", id_="a", embedding=unit(1.0, 0.0)),
            TextNode(text="a2", id_="near-a", embedding=unit(1.0, 0.05)),
            TextNode(text="b", id_="b", embedding=unit(0.6, 1.0)),
        ]
    )
    dense = VectorStoreQuery(query_embedding=unit(1.0, 0.1), similarity_top_k=2)
    assert store.query(dense).ids == ["near-a", "a"]
    mmr = VectorStoreQuery(query_embedding=unit(1.0, 0.1), similarity_top_k=2, mode=VectorStoreQueryMode.MMR)
    assert store.query(mmr, mmr_threshold=0.5).ids == ["near-a", "b"]
    assert store.query(mmr, mmr_threshold=1.0).ids == ["near-a", "a"]  # 1: relevance alone
    with pytest.raises(NotImplementedError, match="sparse"):
        store.query(VectorStoreQuery(query_embedding=unit(1.0), mode=VectorStoreQueryMode.SPARSE))


def test_mmr_through_the_index_retriever_and_ours(filled, minilm):
    """The retriever's ``vector_store_query_mode="mmr"`` (LlamaIndex's and TempScaleRetriever's) reaches the store."""
    from llama_index.core import VectorStoreIndex

    from tempscale_index.pipeline import TempScaleRetriever

    index = VectorStoreIndex.from_vector_store(filled, embed_model=minilm)
    retriever = index.as_retriever(
        similarity_top_k=2, vector_store_query_mode="mmr", vector_store_kwargs={"mmr_threshold": 0.5}
    )
    assert len(retriever.retrieve("lorem ipsum")) == 2
    ours = TempScaleRetriever(filled.client, minilm, similarity_top_k=2, vector_store_query_mode="mmr")
    assert len(ours.retrieve("lorem ipsum")) == 2
    with pytest.raises(ValueError):
        TempScaleRetriever(filled.client, minilm, vector_store_query_mode="nonsense")


def test_filter_only_query_returns_the_filtered_nodes(filled):
    result = filled.query(VectorStoreQuery(filters=where(MetadataFilter(key="rank", value="c")), similarity_top_k=10))
    assert sorted(result.ids) == sorted([C2, C3]) and result.similarities is None
    assert len(filled.query(VectorStoreQuery(node_ids=[A, C2], similarity_top_k=1)).ids) == 1
    with pytest.raises(ValueError, match="filter-only"):
        filled.query(VectorStoreQuery(similarity_top_k=3))


def test_pickle_and_copy_reopen_the_committed_index(filled):
    with pytest.raises(StoreError, match="persist"):
        pickle.dumps(filled)
    filled.persist()
    for clone in (pickle.loads(pickle.dumps(filled)), copy.copy(filled), copy.deepcopy(filled)):
        assert ids_of(clone) == ids_of(filled)
        assert clone.persist_dir == filled.persist_dir and not clone.client.writable
        clone.close()


def test_appending_to_a_document_stages_only_the_new_node(store, monkeypatch):
    store.add(
        [TextNode(text=f"c{i}", id_=f"c{i}", embedding=unit(1.0, i), relationships=_source("d")) for i in range(30)]
    )
    staged = []
    original = type(store.client.nodes).stage
    monkeypatch.setattr(
        type(store.client.nodes), "stage", lambda table, i, data: staged.append(i) or original(table, i, data)
    )
    store.add([TextNode(text="new", id_="new", embedding=unit(0.0, 1.0), relationships=_source("d"))])
    store.delete_nodes(["c3"])
    assert len(staged) == 1 and store.client.num_nodes == 30
    assert set(store.client.documents) == {"d"} and "new" in [n.node_id for n in store.get_nodes(["new"])]
    store.add([TextNode(text="again", id_="c5", embedding=unit(0.0, 0.0, 1.0), relationships=_source("e"))])
    assert store.client.num_nodes == 30 and store.get_nodes(["c5"])[0].ref_doc_id == "e"  # replaced, moved


def test_from_persist_path_and_from_params(filled, tmp_path):
    filled.persist()
    path = tmp_path / "index"
    assert ids_of(TempScaleFaissVectorStore.from_persist_path(str(path / "default__vector_store.json"))) == ids_of(
        filled
    )
    assert ids_of(TempScaleFaissVectorStore.from_params(persist_dir=str(path))) == ids_of(filled)
    with pytest.raises(IndexNotFoundError):
        TempScaleFaissVectorStore.from_persist_path(str(tmp_path / "nothing" / "x.json"))


def test_persist_prints_no_faiss_warning_and_close_removes_the_lock(store, capfd):
    store.add(sample_nodes(one_document=False))
    store.persist()
    assert "WARNING" not in capfd.readouterr().err
    assert (store.client.path / "writer.lock").exists()
    store.close()
    assert not (store.client.path / "writer.lock").exists()


def test_a_tau_without_a_token_count_is_still_checked(store):
    foreign = TextNode(text="embedded elsewhere", embedding=unit(1.0), metadata={TAU_KEY: 0.7})
    with pytest.raises(IndexConfigMismatchError, match=r"τ=0\.7"):
        store.add([foreign])


def test_async_query_and_get(filled):
    async def run():
        result = await filled.aquery(VectorStoreQuery(query_embedding=unit(1.0, 1.0), similarity_top_k=1))
        nodes = await filled.aget_nodes([A], return_embeddings=True)
        return result.ids, nodes[0].embedding

    ids, embedding = asyncio.run(run())
    assert ids == [C3] and embedding is not None


def _source(doc_id: str) -> dict:
    return {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)}
