"""The Ray actor that chunks and embeds documents: one ``TempScaleEmbedding`` per worker, loaded once.

Workers are built from the job's ``IndexConfig`` (not a pickled model), so every worker — on this machine or a
cluster node — embeds with exactly the model and schedules the index records, and refuses to start otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from llama_index.core import Document

from tempscale_index.chunking import chunk_nodes, embed_chunk_nodes, model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.index_config import IndexConfig
from tempscale_index.node_metadata import exclude_file_facts

CHUNK_COLUMNS = ("content_hash", "doc_id", "metadata", "chunk_count", "node", "embedding", "error")


class ChunkEmbedWorker:
    """``map_batches`` callable: a batch of document rows in, one row per chunk out (vector + node JSON).

    A document that yields no chunk (empty text) or could not be read still produces one row, with
    ``chunk_count`` 0, so that the driver can account for every document.
    """

    def __init__(self, config_json: str, chunk_size: int | None, chunk_overlap: int) -> None:
        config = IndexConfig.model_validate_json(config_json)  # the driver's: its caller's embedding, never a file's
        self.embedding = TempScaleEmbedding.from_index_config(config, trust_callable_schedules=True)
        self.splitter = model_token_splitter(self.embedding, chunk_size=chunk_size, chunk_overlap=chunk_overlap)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        documents = []
        for doc_id, text, metadata, content_hash, error in zip(
            batch["doc_id"], batch["text"], batch["metadata"], batch["content_hash"], batch["error"]
        ):
            document = Document(id_=doc_id, text=text, metadata=json.loads(metadata))
            exclude_file_facts(document)  # as the pipeline's readers do: one text view
            nodes = [] if error else chunk_nodes(self.splitter, document)
            documents.append((content_hash, doc_id, metadata, error, nodes))
        vectors = iter(embed_chunk_nodes(self.embedding, [node for *_, nodes in documents for node in nodes]))
        columns: dict[str, list[Any]] = {column: [] for column in CHUNK_COLUMNS}
        no_vector = np.zeros(self.embedding.dimension, dtype=np.float32)
        for content_hash, doc_id, metadata, error, nodes in documents:
            for node in nodes or [None]:
                columns["content_hash"].append(content_hash)
                columns["doc_id"].append(doc_id)
                columns["metadata"].append(metadata)
                columns["chunk_count"].append(len(nodes))
                columns["error"].append(error)
                columns["embedding"].append(no_vector if node is None else next(vectors))
                columns["node"].append("" if node is None else node.to_json())
        return {
            "embedding": np.stack(columns.pop("embedding")),
            "chunk_count": np.array(columns.pop("chunk_count"), dtype=np.int64),
            **{column: np.array(values, dtype=object) for column, values in columns.items()},
        }
