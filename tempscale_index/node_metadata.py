"""How a node is embedded, in one light module: the keys under which it records its τ, and the text view.

The embedding writes the keys, the stores check them and the searcher reports them; keeping them here (no torch,
no model, LlamaIndex only when a node is read) lets every reader import them without loading the embedding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode

TAU_KEY = "tempscale_tau"  # the document τ the chunk was embedded at
TOKENS_KEY = "tempscale_tokens"  # its token count, which the schedule's τ depends on
MODEL_KEY = "tempscale_model"  # the model that embedded it
METADATA_KEYS = (TAU_KEY, TOKENS_KEY, MODEL_KEY)

# One text view: every entry point (ingest, the LlamaIndex transformation, the store, the connectors, the Ray job)
# embeds a node as LlamaIndex's MetadataMode.EMBED shows it, its text after the metadata not excluded from
# embedding; indexes record it. A string here, so that reading the keys imports no LlamaIndex.
TEXT_VIEW = "embed"
# What LlamaIndex's SimpleDirectoryReader keeps out of embedded (and LLM) text: file facts that are not content.
UNEMBEDDED_FILE_KEYS = (
    "file_name",
    "file_type",
    "file_size",
    "creation_date",
    "last_modified_date",
    "last_accessed_date",
)


def embedded_text(node: BaseNode) -> str:
    """The text a node is embedded as, at every entry point (``TEXT_VIEW``)."""
    from llama_index.core.schema import MetadataMode

    return node.get_content(metadata_mode=MetadataMode(TEXT_VIEW))


def exclude_file_facts(node: BaseNode) -> None:
    """Keep a file's name, type, size and dates out of its embedded and LLM text, as LlamaIndex's readers do."""
    for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
        excluded.extend(key for key in UNEMBEDDED_FILE_KEYS if key not in excluded)
