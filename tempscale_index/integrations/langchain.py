"""LangChain ``Embeddings`` over ``TempScaleEmbedding`` (extra ``tempscale-index[langchain]``).

LangChain vector stores call ``embed_documents`` when indexing and ``embed_query`` when searching, which maps
one-to-one onto TempScale's document and query schedules: each text gets the τ its own length calls for.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings

from tempscale_index.embedding import TempScaleEmbedding


class TempScaleLangChainEmbeddings(Embeddings):
    """``Embeddings`` for LangChain: documents at the document schedule's τ, queries at the query schedule's.

    Pass a ``TempScaleEmbedding`` (to share one loaded model with LlamaIndex, or one rebuilt from an index's
    ``IndexConfig``), or the keyword arguments to build one.
    """

    def __init__(self, embedding: TempScaleEmbedding | None = None, **embedding_kwargs: Any) -> None:
        if embedding is not None and embedding_kwargs:
            raise ValueError(f"pass either embedding= or TempScaleEmbedding arguments, not both: {embedding_kwargs}")
        self.embedding = embedding if embedding is not None else TempScaleEmbedding(**embedding_kwargs)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedding.encode(texts, "document").embeddings.tolist()

    def embed_query(self, text: str) -> list[float]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        return self.embedding.encode([text], "query").embeddings[0].tolist()
