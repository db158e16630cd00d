"""The LangChain adapter: documents at the document schedule's τ, queries at the query schedule's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.integrations.langchain import TempScaleLangChainEmbeddings

TEXTS = [
    "The industrial designer proposed a remote control shaped like a fruit.",
    "Marketing reported that users find current remotes ugly and lose them often.",
    "The project manager closed the meeting and assigned the next tasks.",
]


@pytest.fixture(scope="module")
def tempscale() -> TempScaleEmbedding:
    return TempScaleEmbedding(document_temperature=0.8, query_temperature=1.0)


def test_documents_and_queries_use_their_own_schedules(tempscale):
    adapter = TempScaleLangChainEmbeddings(tempscale)
    assert isinstance(adapter, Embeddings)
    documents = np.array(adapter.embed_documents(TEXTS))
    np.testing.assert_allclose(documents, tempscale.encode(TEXTS, "document").embeddings, atol=1e-6)
    query = np.array(adapter.embed_query(TEXTS[0]))
    np.testing.assert_allclose(query, tempscale.encode([TEXTS[0]], "query").embeddings[0], atol=1e-6)
    # τ 0.8 for documents and 1.0 for queries give different vectors for the same text
    assert not np.allclose(query, documents[0], atol=1e-3)


def test_adapter_serves_a_langchain_vector_store(tempscale):
    store = InMemoryVectorStore(embedding=TempScaleLangChainEmbeddings(tempscale))
    store.add_texts(TEXTS)
    hits = store.similarity_search("what shape should the remote have?", k=1)
    assert hits[0].page_content == TEXTS[0]


def test_bad_input_is_named(tempscale):
    adapter = TempScaleLangChainEmbeddings(tempscale)
    with pytest.raises(TypeError, match="text must be a string"):
        adapter.embed_query(["not", "a", "string"])
    with pytest.raises(ValueError, match="not both"):
        TempScaleLangChainEmbeddings(tempscale, query_temperature=0.9)
