"""Chunking measured in the embedding model's own tokens.

LlamaIndex's default splitter counts tiktoken tokens, which undercounts wordpieces: 43% of its 256-token chunks
of a QMSum meeting overflow MiniLM's 256-wordpiece window and lose their tails silently. Counting with the
model's tokenizer, and budgeting for its special tokens and instruction, keeps every chunk inside the window.

Every entry point (the ingestion pipeline, the Ray batch job, the evaluators) chunks through :func:`chunk_text`
/ :func:`chunk_nodes`, so one document gives the same chunk ids, character offsets and texts whichever path
read it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.node_parser.text.sentence import _Split
from llama_index.core.node_parser.text.token import DEFAULT_METADATA_FORMAT_LEN
from llama_index.core.schema import BaseNode, MetadataMode, TextNode

from tempscale_index.node_metadata import TEXT_VIEW, embedded_text

if TYPE_CHECKING:
    from tempscale_index.embedding import TempScaleEmbedding

# Splits are merged as one character each, from code points that are never whitespace (so never stripped).
_MARKER_BASE = 0x10000
_MAX_SPLITS = 0x110000 - _MARKER_BASE


def chunk_token_budget(embedding: TempScaleEmbedding) -> int:
    """Content tokens that fit in one forward pass once special tokens and the document instruction are added."""
    tokenizer = embedding.tokenizer
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    instruction = embedding.instruction_for("document")
    prefix = len(tokenizer.encode(instruction, add_special_tokens=False)) if instruction else 0
    return int(embedding.max_length) - specials - prefix


def model_token_splitter(
    embedding: TempScaleEmbedding, chunk_size: int | None = None, chunk_overlap: int = 32
) -> SentenceSplitter:
    """A ``SentenceSplitter`` whose chunks never exceed the model's window (``chunk_size`` defaults to it).

    Metadata that LlamaIndex embeds with each chunk (``MetadataMode.EMBED``) is counted against the budget too,
    as ``SentenceSplitter`` does, so the embedded text fits the window.
    """
    budget = chunk_token_budget(embedding)
    size = budget if chunk_size is None else int(chunk_size)
    if not 0 < size <= budget:
        raise ValueError(
            f"chunk_size={size} must be between 1 and {budget}: {embedding.model_name} sees at most "
            f"{embedding.max_length} tokens, special tokens and instruction included"
        )
    if not 0 <= chunk_overlap < size:
        raise ValueError(f"chunk_overlap={chunk_overlap} must be at least 0 and below chunk_size={size}")
    tokenizer = embedding.tokenizer
    return SentenceSplitter(
        chunk_size=size,
        chunk_overlap=chunk_overlap,
        tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False, verbose=False),
    )


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its id, its character range ``[start, end)`` and its text, ``document[start:end]``."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


def stable_chunk_id(position: int, document: BaseNode) -> str:
    """A UUID from the document's id, its content hash and the chunk's position (a LlamaIndex ``id_func``).

    Re-chunking an unchanged document gives the same ids, so a retried write replaces instead of duplicating;
    UUIDs are what Qdrant requires of point ids.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tempscale-index:{document.node_id}:{document.hash}:{position}"))


def chunk_spans(splitter: SentenceSplitter, text: str, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` of each chunk of ``text``: ``splitter``'s own split and merge, with exact offsets.

    ``SentenceSplitter`` returns chunk strings only, and finding them again in the text (as LlamaIndex does)
    picks the wrong place when text repeats. Instead each split's place is taken as it is cut (splits come in
    order and tile the text, up to whitespace), and the splits are merged as one marker character each, so that
    every merged chunk names the splits it is made of. ``chunk_size`` (default the splitter's) leaves room for the
    metadata embedded with each chunk.
    """
    if not text.strip():
        return []
    chunk_size = splitter.chunk_size if chunk_size is None else chunk_size
    bounds: list[tuple[int, int]] = []
    markers: list[_Split] = []
    cursor = 0
    for position, split in enumerate(splitter._split(text, chunk_size)):
        start = text.find(split.text, cursor)
        if start < 0 or text[cursor:start].strip():  # only whitespace may lie between two splits
            raise RuntimeError(f"SentenceSplitter dropped text before the split {split.text[:40]!r}")
        if position >= _MAX_SPLITS:
            raise ValueError(f"a document of over {_MAX_SPLITS} splits is too long to chunk at once; split it first")
        bounds.append((cursor, start + len(split.text)))
        markers.append(_Split(chr(_MARKER_BASE + position), is_sentence=split.is_sentence, token_size=split.token_size))
        cursor = start + len(split.text)
    spans = []
    for merged in splitter._merge(markers, chunk_size):
        start, end = bounds[ord(merged[0]) - _MARKER_BASE][0], bounds[ord(merged[-1]) - _MARKER_BASE][1]
        content = text[start:end]
        if content.strip():
            spans.append((start + len(content) - len(content.lstrip()), end - len(content) + len(content.rstrip())))
    return spans


def chunk_text(
    splitter: SentenceSplitter, doc_id: str, text: str, first_position: int = 0, chunk_size: int | None = None
) -> list[Chunk]:
    """The chunks of one document's text, with ids stable across runs and entry points.

    ``first_position`` numbers the chunks of a document given in parts (pages) on from the previous part's;
    ``chunk_size`` as in :func:`chunk_spans`.
    """
    source = Document(id_=doc_id, text=text)  # the id depends on the text alone, not on metadata
    return [
        Chunk(stable_chunk_id(position, source), doc_id, start, end, text[start:end])
        for position, (start, end) in enumerate(chunk_spans(splitter, text, chunk_size), first_position)
    ]


def chunk_nodes(splitter: SentenceSplitter, document: Document, first_position: int = 0) -> list[TextNode]:
    """:func:`chunk_text` of a LlamaIndex document, as nodes that carry its metadata and a link to it.

    Chunks are embedded with the metadata their text view shows (:data:`TEXT_VIEW`), so its length comes off each
    chunk's budget, as ``SentenceSplitter`` does (the embedded text still fits the window); the text alone is cut.
    """
    overhead = _metadata_tokens(splitter, document.get_metadata_str(MetadataMode(TEXT_VIEW)))
    if overhead >= splitter.chunk_size:
        raise ValueError(
            f"the metadata embedded with each chunk of {document.doc_id} takes {overhead} tokens, not less than "
            f"chunk_size={splitter.chunk_size}: exclude keys from embedding (excluded_embed_metadata_keys) or "
            "use larger chunks"
        )
    text = document.get_content(MetadataMode.NONE)
    chunks = chunk_text(splitter, document.doc_id, text, first_position, splitter.chunk_size - overhead)
    nodes = build_nodes_from_splits(
        [chunk.text for chunk in chunks], document, id_func=lambda position, _: chunks[position].chunk_id
    )
    for node, chunk in zip(nodes, chunks):
        node.start_char_idx, node.end_char_idx = chunk.start, chunk.end
        node.metadata = dict(document.metadata)
    return nodes


def _metadata_tokens(splitter: SentenceSplitter, metadata: str) -> int:
    """Tokens the metadata adds to an embedded chunk (LlamaIndex's count: the string and its separator)."""
    return len(splitter._tokenizer(metadata)) + DEFAULT_METADATA_FORMAT_LEN if metadata.strip() else 0


def embed_chunk_nodes(embedding: TempScaleEmbedding, nodes: Sequence[BaseNode]) -> np.ndarray:
    """Vectors of the nodes as every entry point embeds them (:func:`embedded_text`) at the document τ, one row
    per node; each node's τ and token count are recorded in its metadata."""
    if not nodes:
        return np.zeros((0, embedding.dimension), dtype=np.float32)
    encoded = embedding.encode([embedded_text(node) for node in nodes], "document")
    for node, tau, count in zip(nodes, encoded.taus, encoded.token_counts):
        embedding.record_tau(node, tau, count)
    return encoded.embeddings
