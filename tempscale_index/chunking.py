"""Chunking measured in the embedding model's own tokens.

LlamaIndex's default splitter counts tiktoken tokens, which undercounts wordpieces: 43% of its 256-token chunks
of a QMSum meeting overflow MiniLM's 256-wordpiece window and lose their tails silently. Counting with the
model's tokenizer, and budgeting for its special tokens and instruction, keeps every chunk inside the window.
"""

from __future__ import annotations

from llama_index.core.node_parser import SentenceSplitter

from tempscale_index.embedding import TempScaleEmbedding


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
