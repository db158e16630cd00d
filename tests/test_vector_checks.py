"""Issue 15, point 4: vectors that would break search (NaN, ∞, far from unit norm) are refused with one clear
error by the FAISS store, the LlamaIndex vector store and the connectors, and nothing is added."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from tempscale_index.store import FaissStore
from tempscale_index.store.vector_checks import InvalidVectorError, check_vectors
from tests.pipeline_helpers import fake_config
from tests.test_store import DIM, make_nodes, random_vectors


def spoiled(kind: str, n: int = 3) -> np.ndarray:
    vectors = random_vectors(n, seed=1)
    if kind == "nan":
        vectors[1, 2] = np.nan
    elif kind == "inf":
        vectors[1, 0] = np.inf
    elif kind == "norm-100":
        vectors[1] *= 100
    else:
        vectors[1] = 0.0
    return vectors


BAD = {"nan": "NaN or infinite", "inf": "NaN or infinite", "norm-100": "norm 100, not 1", "zero": "norm 0, not 1"}


@pytest.mark.parametrize("kind", BAD)
def test_the_check_names_the_first_bad_row(kind):
    with pytest.raises(InvalidVectorError, match=BAD[kind]) as raised:
        check_vectors(spoiled(kind), normalized=True, where="the index", ids=["x", "y", "z"])
    assert str(raised.value).startswith("node y ") and "\n" not in str(raised.value)
    check_vectors(random_vectors(3, seed=2), normalized=True, where="the index")


def test_unnormalised_embeddings_only_need_finite_values():
    check_vectors(spoiled("norm-100"), normalized=False, where="the index")
    with pytest.raises(InvalidVectorError, match="NaN or infinite"):
        check_vectors(spoiled("inf"), normalized=False, where="the index")


@pytest.mark.parametrize("kind", BAD)
def test_the_faiss_store_refuses_and_stays_unchanged(tmp_path, kind):
    """A norm-100 vector would win every query: refused, and the document is not half-added."""
    with FaissStore.create(tmp_path / "index", fake_config(DIM)) as store:
        store.add("good", "h", make_nodes("good", 2), random_vectors(2, seed=5))
        with pytest.raises(InvalidVectorError, match=BAD[kind]):
            store.add("bad", "h", make_nodes("bad", 3), spoiled(kind))
        assert set(store.documents) == {"good"} and store.index.ntotal == 2


def _embedded_nodes(embedding, kind: str) -> list[TextNode]:
    """Three chunks embedded by the model, the second one's vector spoiled after the fact."""
    nodes = embedding([TextNode(text=f"chunk number {i} about budgets", id_=f"n{i}") for i in range(3)])
    vector = np.asarray(nodes[1].embedding)
    nodes[1].embedding = (vector * np.nan if kind == "nan" else vector * 100).tolist()
    return nodes


@pytest.mark.parametrize("kind", ["nan", "norm-100"])
def test_the_llamaindex_vector_store_refuses(tmp_path, minilm, kind):
    from tempscale_index.store.vector_store import TempScaleFaissVectorStore

    store = TempScaleFaissVectorStore.create(tmp_path / "index", embed_model=minilm)
    with pytest.raises(InvalidVectorError, match=r"node n1 has (NaN|norm 100)"):
        store.add(_embedded_nodes(minilm, kind))
    assert store.client.index.ntotal == 0
    store.close()


@pytest.mark.parametrize("kind", ["nan", "norm-100"])
def test_a_connector_refuses(tmp_path, minilm, kind):
    pytest.importorskip("lancedb")
    pytest.importorskip("llama_index.vector_stores.lancedb")
    from tempscale_index.connectors.lancedb import LanceDBConnector

    connector = LanceDBConnector("c", uri=str(tmp_path / "lancedb"))
    connector.attach(minilm)
    with pytest.raises(InvalidVectorError, match=r"node n1 has (NaN|norm 100).*LanceDB collection 'c'"):
        connector.add_nodes(_embedded_nodes(minilm, kind))
    connector.close()
