"""Quickstart: TempScale embeddings in LlamaIndex, stored in a crash-safe FAISS index directory.

Runs offline on the bundled all-MiniLM-L6-v2. The documents are the long descriptions (README pages) of a few
installed Python packages, so the example works on any machine with tempscale-index installed. The index is the
same directory format `tempscale-index ingest` writes: `tempscale-index query DIR "..."` answers from it too.

    python examples/quickstart.py "How do I save an index to disk?" [--index runs/quickstart]
"""

from __future__ import annotations

import argparse
import tempfile
from importlib import metadata

from llama_index.core import Document, StorageContext, VectorStoreIndex

from tempscale_index import TempScaleEmbedding, TempScaleFaissVectorStore
from tempscale_index.chunking import model_token_splitter

PACKAGES = ["faiss-cpu", "llama-index-core", "sentence-transformers", "transformers", "typer", "tqdm"]


def package_documents() -> list[Document]:
    documents = []
    for name in PACKAGES:
        description = metadata.metadata(name).get_payload() or ""
        if description.strip():
            documents.append(Document(id_=name, text=description, metadata={"file_name": f"{name}/README"}))
    return documents


def build(index_dir: str) -> None:
    """Embed the documents into a new index at ``index_dir`` and commit it."""
    embed_model = TempScaleEmbedding()  # bundled all-MiniLM-L6-v2, offline; document τ "auto", query τ 1.0
    vector_store = TempScaleFaissVectorStore.create(index_dir, embed_model=embed_model, index_type="Flat")
    VectorStoreIndex.from_documents(
        package_documents(),
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=embed_model,
        transformations=[model_token_splitter(embed_model, chunk_size=200, chunk_overlap=20)],
        show_progress=True,
    )
    vector_store.persist()  # atomic: durable once it returns, and a crash keeps the previous version
    vector_store.close()


def search(index_dir: str, question: str) -> None:
    """Reopen the index, as another process would, and query it with the embedding it was built with."""
    vector_store = TempScaleFaissVectorStore.from_persist_dir(index_dir)
    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=vector_store.embed_model)
    for hit in index.as_retriever(similarity_top_k=3).retrieve(question):
        meta = hit.node.metadata
        snippet = " ".join(hit.node.get_content().split())[:100]
        print(
            f"{hit.score:.3f}  τ={meta['tempscale_tau']:.3f}  tokens={meta['tempscale_tokens']:3d}  "
            f"{meta['file_name']:28s} {snippet}"
        )
    vector_store.close()


def main(question: str, index_dir: str | None = None) -> None:
    if index_dir is not None:
        build(index_dir)
        search(index_dir, question)
        return
    with tempfile.TemporaryDirectory(prefix="tempscale-quickstart-") as folder:
        build(folder)
        search(folder, question)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="How do I save an index to disk and load it again?")
    parser.add_argument("--index", help="index directory to create (default: a temporary one)")
    arguments = parser.parse_args()
    main(arguments.question, arguments.index)
