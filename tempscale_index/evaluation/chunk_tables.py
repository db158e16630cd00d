"""The chunks an evaluation scores against: a dataset's documents chunked as ingestion chunks them, or the
chunks of an existing index read back from its nodes.

Chunk-level relevance needs every chunk of the index with its character range (also the chunks never retrieved),
so both paths give :class:`~tempscale_index.chunking.Chunk` records.
"""

from __future__ import annotations

from collections.abc import Iterable

from llama_index.core import Document
from llama_index.core.schema import BaseNode, MetadataMode
from tqdm.auto import tqdm

from tempscale_index.chunking import Chunk, chunk_text, model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation.datasets import RetrievalDataset

DOC_ID_KEY = "doc_id"


def dataset_documents(dataset: RetrievalDataset) -> list[Document]:
    """One LlamaIndex ``Document`` per corpus entry, with the dataset's document id as its id (and so as its
    chunks' ``ref_doc_id``) and no metadata, so that chunks hold exactly the document's text."""
    return [Document(id_=doc_id, text=text) for doc_id, text in dataset.corpus.items()]


def chunk_dataset(
    dataset: RetrievalDataset,
    embedding: TempScaleEmbedding,
    chunk_size: int | None = None,
    chunk_overlap: int = 32,
    show_progress: bool = False,
) -> list[Chunk]:
    """Every document chunked exactly as ingestion chunks it (same ids, offsets and texts)."""
    splitter = model_token_splitter(embedding, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    documents = tqdm(dataset.corpus.items(), desc="Chunking", unit="doc", disable=not show_progress)
    chunks = [chunk for doc_id, text in documents for chunk in chunk_text(splitter, doc_id, text)]
    if not chunks:
        raise ValueError(f"dataset {dataset.name!r} has no non-empty document to chunk")
    return chunks


def node_document_id(node: BaseNode) -> str:
    """The dataset document a node came from: its ``doc_id`` metadata, else its source document's id."""
    doc_id = node.metadata.get(DOC_ID_KEY) or node.ref_doc_id
    if doc_id is None:
        raise ValueError(
            f"node {node.node_id} names no document: give nodes a {DOC_ID_KEY!r} metadata key or a source "
            "relationship (ref_doc_id) matching the dataset's document ids"
        )
    return str(doc_id)


def chunk_key(doc_id: str, start: int, end: int) -> str:
    """A chunk's id for scoring: its document and range, so that runs and qrels agree whichever store or
    retriever produced the nodes."""
    return f"{doc_id}@{start}:{end}"


def node_chunk(node: BaseNode) -> Chunk:
    """The chunk a node holds, keyed by :func:`chunk_key`; the node must carry character offsets."""
    start, end = getattr(node, "start_char_idx", None), getattr(node, "end_char_idx", None)
    if start is None or end is None:
        raise ValueError(
            f"node {node.node_id} has no start/end character offsets; chunk-level scoring needs them "
            "(tempscale_index.chunking.chunk_nodes and LlamaIndex node parsers set them)"
        )
    doc_id = node_document_id(node)
    return Chunk(chunk_key(doc_id, start, end), doc_id, int(start), int(end), node.get_content(MetadataMode.NONE))


def chunk_table(nodes: Iterable[BaseNode]) -> list[Chunk]:
    """Every chunk of an index, as chunk-level qrels need them (also the chunks never retrieved)."""
    return list({chunk.chunk_id: chunk for chunk in map(node_chunk, nodes)}.values())
