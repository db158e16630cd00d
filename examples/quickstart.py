"""Quickstart: TempScale embeddings in a plain LlamaIndex VectorStoreIndex.

Runs offline on the bundled all-MiniLM-L6-v2. The documents are the long descriptions (README pages) of a few
installed Python packages, so the example works on any machine with tempscale-index installed.

    python examples/quickstart.py "How do I save an index to disk?"
"""

from __future__ import annotations

import sys
from importlib import metadata

from llama_index.core import Document, Settings, VectorStoreIndex

from tempscale_index import LogLinearSchedule, TempScaleEmbedding
from tempscale_index.chunking import model_token_splitter

PACKAGES = ["faiss-cpu", "llama-index-core", "sentence-transformers", "transformers", "typer", "tqdm"]


def package_documents() -> list[Document]:
    documents = []
    for name in PACKAGES:
        description = metadata.metadata(name).get_payload() or ""
        if description.strip():
            documents.append(Document(text=description, metadata={"file_name": f"{name}/README"}))
    return documents


def main(question: str) -> None:
    embed_model = TempScaleEmbedding(
        # documents: τ = 1 for short chunks, down to 0.9 for full 256-token chunks; queries: τ = 1
        document_temperature=LogLinearSchedule(short_tokens=64, short_tau=1.0, long_tokens=256, long_tau=0.9),
        query_temperature=1.0,
    )
    Settings.embed_model = embed_model
    # Run the embedding as the last transformation: nodes then carry the τ they were embedded at.
    Settings.transformations = [model_token_splitter(embed_model, chunk_size=200, chunk_overlap=20), embed_model]

    index = VectorStoreIndex.from_documents(package_documents(), show_progress=True)
    for hit in index.as_retriever(similarity_top_k=3).retrieve(question):
        meta = hit.node.metadata
        snippet = " ".join(hit.node.get_content().split())[:100]
        print(f"{hit.score:.3f}  τ={meta['tempscale_tau']:.3f}  tokens={meta['tempscale_tokens']:3d}  "
              f"{meta['file_name']:28s} {snippet}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "How do I save an index to disk and load it again?")
