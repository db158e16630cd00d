"""RAG over Qdrant with TempScale embeddings: ingest QMSum meetings, then retrieve (or answer, with an LLM).

    python examples/rag_qdrant.py [QMSUM_DIR] [--qdrant-path ./qdrant-rag]

Runs Qdrant in local mode (a directory, no server); pass url= to QdrantConnector to use a server instead.
By default it prints the retrieved chunks with their τ (no LLM needed); with ``--answer`` it asks
``as_query_engine()``, which uses the LLM configured in LlamaIndex's ``Settings.llm``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llama_index.core import Document, Settings
from tempscale_index.connectors.qdrant import QdrantConnector

from tempscale_index import TempScaleEmbedding

DEFAULT_QMSUM = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qmsum" / "test"  # shipped


def meetings(folder: Path, limit: int) -> list[Document]:
    documents = []
    for file in sorted(folder.glob("*.json"))[:limit]:
        turns = json.loads(file.read_text())["meeting_transcripts"]
        text = "\n".join(f"{turn['speaker']}: {turn['content']}" for turn in turns)
        documents.append(Document(text=text, id_=file.stem, metadata={"file_name": file.name}))
    return documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qmsum_dir", nargs="?", type=Path, default=DEFAULT_QMSUM)
    parser.add_argument("--qdrant-path", default="./qdrant-rag")
    parser.add_argument("--meetings", type=int, default=3)
    parser.add_argument("--answer", action="store_true", help="answer with Settings.llm instead of retrieving")
    parser.add_argument("--question", default="What did the group say about the structure of the belief net?")
    args = parser.parse_args()

    # Documents at a τ that falls with chunk length, queries at their own τ; LlamaIndex uses it everywhere.
    Settings.embed_model = TempScaleEmbedding(
        document_temperature={
            "type": "loglinear",
            "short_tokens": 32,
            "short_tau": 1.0,
            "long_tokens": 256,
            "long_tau": 0.9,
        },
        query_temperature=1.0,
    )
    connector = QdrantConnector("qmsum", path=args.qdrant_path)
    connector.attach(Settings.embed_model)  # records the IndexConfig in the collection (or checks it)
    added = connector.add_documents(meetings(args.qmsum_dir, args.meetings))
    print(f"{len(added)} chunks in {connector.describe()}")

    index = connector.as_index()
    if args.answer:
        print(index.as_query_engine(similarity_top_k=3).query(args.question))
    else:
        for hit in index.as_retriever(similarity_top_k=3).retrieve(args.question):
            snippet = " ".join(hit.node.get_content().split())[:120]
            print(f"{hit.score:.3f}  τ={hit.node.metadata['tempscale_tau']:.3f}  {hit.node.ref_doc_id}: {snippet}")
    connector.close()


if __name__ == "__main__":
    main()
