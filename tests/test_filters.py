"""Metadata filters: every LlamaIndex FilterOperator on a small store, nested conditions, clear refusals, and
filtered search on Flat, IVF and HNSW indexes (exact scoring of small sets and FAISS's id selector) checked
against brute force. Random vectors: no model is loaded."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from tempscale_index.store import FaissStore, vector_index
from tempscale_index.store import filters as filters_module
from tempscale_index.store.filters import MetadataFilterError, allowed_node_ids, compile_filters
from tempscale_index.store.vector_store import TempScaleFaissVectorStore
from tests.pipeline_helpers import fake_config

DIM = 16
DOCUMENTS = {
    "d1": {"year": 2020, "lang": "en", "title": "Vector search with FAISS", "tags": ["faiss", "search"], "note": ""},
    "d2": {"year": 2022, "lang": "de", "title": "Attention temperature", "tags": ["llm"], "note": "x"},
    "d3": {"year": 2024, "lang": "en", "title": "faiss tips", "tags": []},
}
Op = FilterOperator
CASES = [  # (key, operator, value, documents that match)
    ("lang", Op.EQ, "en", {"d1", "d3"}),
    ("doc_id", Op.EQ, "d2", {"d2"}),
    ("lang", Op.NE, "en", {"d2"}),
    ("note", Op.NE, "x", {"d1", "d3"}),  # a missing key is "not equal", as in LlamaIndex's own stores
    ("year", Op.GT, 2020, {"d2", "d3"}),
    ("year", Op.GTE, 2022, {"d2", "d3"}),
    ("year", Op.LT, 2022, {"d1"}),
    ("year", Op.LTE, 2022, {"d1", "d2"}),
    ("lang", Op.IN, ["de", "fr"], {"d2"}),
    ("ref_doc_id", Op.NIN, ["d1"], {"d2", "d3"}),
    ("tags", Op.ANY, ["faiss", "llm"], {"d1", "d2"}),
    ("tags", Op.ALL, ["faiss", "search"], {"d1"}),
    ("title", Op.TEXT_MATCH, "FAISS", {"d1"}),
    ("title", Op.TEXT_MATCH_INSENSITIVE, "faiss", {"d1", "d3"}),
    ("tags", Op.CONTAINS, "llm", {"d2"}),
    ("note", Op.IS_EMPTY, None, {"d1", "d3"}),
    ("tags", Op.IS_EMPTY, None, {"d3"}),
]


def leaf(key: str, operator: FilterOperator, value) -> MetadataFilter:
    return MetadataFilter(key=key, operator=operator, value=value)


@pytest.fixture
def small_store(tmp_path):
    """Three documents of four chunks each, committed; returns a read-only store and each chunk's vector."""
    rng = np.random.default_rng(0)
    vectors = {}
    with FaissStore.create(tmp_path / "index", fake_config(DIM)) as store:
        for doc_id, metadata in DOCUMENTS.items():
            block = rng.standard_normal((4, DIM)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)  # the store refuses unnormalised vectors
            ids = store.add(doc_id, doc_id, [TextNode(text=f"{doc_id} {i}") for i in range(4)], block, metadata)
            vectors.update(zip(ids, block))
        store.commit()
    with FaissStore.open(tmp_path / "index") as store:
        yield store, vectors


def matching(store: FaissStore, filters) -> set[str]:
    ids = set(allowed_node_ids(store, filters))
    return {doc_id for doc_id, record in store.documents.items() if ids & set(record.node_ids)}


def test_the_table_covers_every_operator_llamaindex_defines():
    assert {operator for _, operator, _, _ in CASES} == set(FilterOperator)


@pytest.mark.parametrize(("key", "operator", "value", "expected"), CASES, ids=[f"{c[1].name}-{c[0]}" for c in CASES])
def test_every_operator_selects_the_right_documents(small_store, key, operator, value, expected):
    store, _ = small_store
    assert matching(store, MetadataFilters(filters=[leaf(key, operator, value)])) == expected
    assert matching(store, leaf(key, operator, value)) == expected  # a bare MetadataFilter works too


def test_nested_filters_with_and_or_not(small_store):
    store, _ = small_store
    english_without_faiss_in_caps = MetadataFilters(
        filters=[
            leaf("lang", Op.EQ, "en"),
            MetadataFilters(filters=[leaf("title", Op.TEXT_MATCH, "FAISS")], condition=FilterCondition.NOT),
        ]
    )
    assert matching(store, english_without_faiss_in_caps) == {"d3"}
    german_or_recent = MetadataFilters(
        filters=[leaf("lang", Op.EQ, "de"), MetadataFilters(filters=[leaf("year", Op.GTE, 2024)])],
        condition=FilterCondition.OR,
    )
    assert matching(store, german_or_recent) == {"d2", "d3"}
    neither = MetadataFilters(
        filters=[leaf("lang", Op.EQ, "de"), leaf("year", Op.LT, 2021)], condition=FilterCondition.NOT
    )
    assert matching(store, neither) == {"d3"}
    assert matching(store, MetadataFilters(filters=[], condition=FilterCondition.OR)) == set(DOCUMENTS)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (leaf("lang", Op.IN, "en"), "IN needs a list"),
        (leaf("tags", Op.ALL, "faiss"), "ALL needs a list"),
        (leaf("title", Op.TEXT_MATCH, 3), "TEXT_MATCH needs a string"),
    ],
)
def test_a_filter_of_the_wrong_shape_is_refused_before_any_search(bad, message):
    with pytest.raises(MetadataFilterError, match=message):
        compile_filters(MetadataFilters(filters=[bad]))


def test_a_comparison_of_incompatible_values_names_the_operator(small_store):
    store, _ = small_store
    with pytest.raises(MetadataFilterError, match=r"'lang' GT .* cannot be applied to the value 'en'"):
        allowed_node_ids(store, MetadataFilters(filters=[leaf("lang", Op.GT, 3)]))


def test_an_operator_unknown_to_llamaindex_helpers_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(filters_module, "SUPPORTED_OPERATORS", filters_module.SUPPORTED_OPERATORS - {Op.CONTAINS})
    with pytest.raises(MetadataFilterError, match="operator CONTAINS is not supported"):
        compile_filters(leaf("tags", Op.CONTAINS, "llm"))


MIXED_VALUES = [1, 1.0, True, 0, False, "1", "", "en", 2.5, None, [1], ["en", "de"], []]
FILTER_VALUES = [1, 0, "en", 1.0, 2.5, [1, 2], ["en", "de"], None]


@pytest.mark.parametrize("operator", sorted(filters_module.SUPPORTED_OPERATORS, key=lambda op: op.value))
def test_remembered_answers_agree_with_llamaindex_for_every_value_type(operator):
    """Compiled filters remember a leaf's answer per typed value and are reused per filter: asked again, in
    another order, they still give what LlamaIndex's own matcher gives (``1``, ``1.0`` and ``True`` apart)."""
    from llama_index.core.vector_stores.utils import build_metadata_filter_fn

    for value in FILTER_VALUES:
        filters = MetadataFilters(filters=[leaf("v", operator, value)])
        try:
            matcher = filters_module.compiled_filters(filters)
        except MetadataFilterError:
            continue  # a value of the wrong shape for the operator: refused up front (tested above)
        reference = build_metadata_filter_fn(lambda metadata: metadata, filters)
        for metadata in [{"v": item} for item in MIXED_VALUES * 2 + MIXED_VALUES[::-1]] + [{}]:
            try:
                expected = reference(metadata)
            except TypeError:
                with pytest.raises(MetadataFilterError):
                    filters_module.compiled_filters(filters)(metadata)
                continue
            assert matcher(metadata) is expected, (operator, value, metadata)
            assert filters_module.compiled_filters(filters)(metadata) is expected


def test_a_kept_filter_is_told_apart_from_one_with_another_value(small_store):
    store, _ = small_store
    english = allowed_node_ids(store, MetadataFilters(filters=[leaf("lang", Op.EQ, "en")]))
    german = allowed_node_ids(store, MetadataFilters(filters=[leaf("lang", Op.EQ, "de")]))
    assert set(english).isdisjoint(german) and english and german
    assert allowed_node_ids(store, MetadataFilters(filters=[leaf("lang", Op.EQ, "en")])) == english


def brute_force(vectors: dict[int, np.ndarray], allowed: list[int], query: np.ndarray, k: int) -> list[int]:
    scores = {i: float(vectors[i] @ query) for i in allowed}
    return sorted(scores, key=lambda i: -scores[i])[:k]


@pytest.mark.parametrize("index_type", ["Flat", "IVF4,Flat", "HNSW16"])
@pytest.mark.parametrize("path", ["exact", "selector"])
def test_filtered_search_matches_brute_force_on_every_index_type(tmp_path, monkeypatch, index_type, path):
    """Small allowed sets are scored exactly; large ones (forced here by a zero limit) use FAISS's id selector."""
    if path == "selector":
        monkeypatch.setattr(vector_index, "EXACT_FILTER_LIMIT", 0)
    rng = np.random.default_rng(1)
    vectors: dict[int, np.ndarray] = {}
    with FaissStore.create(tmp_path / "i", fake_config(DIM), index_factory=index_type, train_size=64) as store:
        for number in range(40):
            block = rng.standard_normal((8, DIM)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            nodes = [TextNode(text=f"{number}-{i}") for i in range(8)]
            ids = store.add(f"doc{number}", str(number), nodes, block, {"parity": number % 2, "n": number})
            vectors.update(zip(ids, block))
        store.commit()
    with FaissStore.open(tmp_path / "i", nprobe=4, ef_search=512) as store:
        filters = MetadataFilters(filters=[leaf("parity", Op.EQ, 1), leaf("n", Op.LT, 30)])
        allowed = allowed_node_ids(store, filters)
        assert len(allowed) == 15 * 8
        for query in rng.standard_normal((5, DIM)).astype(np.float32):
            _, ids = store.search(query, 10, allowed)
            assert ids[0].tolist() == brute_force(vectors, allowed, query, 10)


def test_vector_store_queries_filter_on_hnsw_and_ivf_without_a_model(tmp_path):
    """The LlamaIndex vector store runs the same filters (nodes carry their τ, so no model is loaded)."""
    rng = np.random.default_rng(2)
    for index_type in ("HNSW16", "IVF2,Flat"):
        store = TempScaleFaissVectorStore(
            FaissStore.create(tmp_path / index_type, fake_config(DIM), index_factory=index_type, train_size=16)
        )
        nodes = []
        for number in range(12):
            vector = rng.standard_normal(DIM).astype(np.float32)
            metadata = {"lang": "en" if number % 3 else "de", "tempscale_tau": 1.0, "tempscale_tokens": 5}
            node = TextNode(
                text=f"text {number}", metadata=metadata, embedding=(vector / np.linalg.norm(vector)).tolist()
            )
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{number}")
            nodes.append(node)
        store.add(nodes)
        store.persist()
        german = MetadataFilters(filters=[leaf("lang", Op.EQ, "de")])
        result = store.query(VectorStoreQuery(query_embedding=nodes[4].embedding, similarity_top_k=3, filters=german))
        assert [node.metadata["lang"] for node in result.nodes] == ["de"] * 3
        assert result.ids[0] != nodes[4].node_id  # the nearest chunk (itself) is English: filtered out
        assert {node.node_id for node in store.get_nodes(filters=german)} == {n.node_id for n in nodes[::3]}
        store.close()
        reopened = TempScaleFaissVectorStore.from_persist_dir(tmp_path / index_type, nprobe=2, ef_search=128)
        assert (reopened.client.nprobe, reopened.client.ef_search) == (2, 128)
        assert reopened.query(VectorStoreQuery(query_embedding=nodes[4].embedding, similarity_top_k=1)).ids == [
            nodes[4].node_id
        ]
