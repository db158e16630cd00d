"""LlamaIndex ``MetadataFilters`` over a store's documents, evaluated by LlamaIndex's own operator semantics.

Filters see document-level metadata: what a document's chunks all share (file name, distribution…) plus its id
under ``doc_id``, ``ref_doc_id`` and ``document_id`` (the keys LlamaIndex's vector stores use). Documents are
held in memory, so choosing the chunks a filter allows costs no disk read; the chunk ids then restrict the
FAISS search (exact scores for small sets, an id selector for large ones, on Flat, IVF and HNSW alike).

Each leaf filter runs through ``llama_index.core.vector_stores.utils.build_metadata_filter_fn`` (the simple
vector store's matcher); nesting and the AND/OR/NOT conditions are combined here because that helper refuses
nested ``MetadataFilters``. An operator LlamaIndex may add later, which that helper does not know, is refused
by name rather than silently matching nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from tempscale_index.store.faiss_store import DocumentRecord, FaissStore

DOC_ID_KEYS = ("doc_id", "ref_doc_id", "document_id")
SUPPORTED_OPERATORS = frozenset(
    {
        FilterOperator.EQ,
        FilterOperator.NE,
        FilterOperator.GT,
        FilterOperator.GTE,
        FilterOperator.LT,
        FilterOperator.LTE,
        FilterOperator.IN,
        FilterOperator.NIN,
        FilterOperator.ANY,
        FilterOperator.ALL,
        FilterOperator.TEXT_MATCH,
        FilterOperator.TEXT_MATCH_INSENSITIVE,
        FilterOperator.CONTAINS,
        FilterOperator.IS_EMPTY,
    }
)
_LIST_OPERATORS = frozenset({FilterOperator.IN, FilterOperator.NIN, FilterOperator.ANY, FilterOperator.ALL})
_TEXT_OPERATORS = frozenset({FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE})

Matcher = Callable[[Mapping[str, Any]], bool]


class MetadataFilterError(ValueError):
    """A filter this store cannot evaluate (unknown operator, or a value of the wrong type for it)."""


def compile_filters(filters: MetadataFilters | MetadataFilter) -> Matcher:
    """A predicate over one metadata mapping; raises ``MetadataFilterError`` now for a filter it cannot run."""
    if isinstance(filters, MetadataFilter):
        return _leaf(filters)
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    parts = [compile_filters(item) for item in filters.filters]
    if not parts:  # as LlamaIndex's own stores: no filter, no restriction
        return lambda metadata: True
    if condition == FilterCondition.AND:
        return lambda metadata: all(part(metadata) for part in parts)
    if condition == FilterCondition.OR:
        return lambda metadata: any(part(metadata) for part in parts)
    if condition == FilterCondition.NOT:
        return lambda metadata: not any(part(metadata) for part in parts)
    raise MetadataFilterError(f"filter condition {condition.value!r} is not supported (use and, or, not)")


def _leaf(leaf: MetadataFilter) -> Matcher:
    operator = FilterOperator(leaf.operator)
    described = f"filter {leaf.key!r} {operator.name} ({operator.value!r}) {leaf.value!r}"
    if operator not in SUPPORTED_OPERATORS:
        raise MetadataFilterError(f"{described}: operator {operator.name} is not supported by this store")
    if operator in _LIST_OPERATORS and not isinstance(leaf.value, list):
        raise MetadataFilterError(f"{described}: {operator.name} needs a list of values")
    if operator in _TEXT_OPERATORS and not isinstance(leaf.value, str):
        raise MetadataFilterError(f"{described}: {operator.name} needs a string")
    # build_metadata_filter_fn looks metadata up by node id; here the "id" is the metadata itself.
    match = build_metadata_filter_fn(lambda metadata: metadata, MetadataFilters(filters=[leaf]))

    def matcher(metadata: Mapping[str, Any]) -> bool:
        try:
            return match(metadata)  # type: ignore[arg-type]
        except TypeError as exc:
            raise MetadataFilterError(
                f"{described} cannot be applied to the value {metadata.get(leaf.key)!r}: {exc}"
            ) from None

    return matcher


def document_metadata(record: DocumentRecord) -> dict[str, Any]:
    """What a filter sees of one document: its metadata and its id under each of ``DOC_ID_KEYS``."""
    return {**record.metadata, **dict.fromkeys(DOC_ID_KEYS, record.doc_id)}


def matching_documents(
    records: Iterable[DocumentRecord],
    filters: MetadataFilters | MetadataFilter | None = None,
    doc_ids: Iterable[str] | None = None,
) -> list[DocumentRecord]:
    """The documents in ``doc_ids`` (all when None) that pass ``filters`` (all when None)."""
    wanted = set(doc_ids) if doc_ids is not None else None
    matcher = compile_filters(filters) if filters is not None else None
    return [
        record
        for record in records
        if (wanted is None or record.doc_id in wanted) and (matcher is None or matcher(document_metadata(record)))
    ]


def allowed_node_ids(
    store: FaissStore, filters: MetadataFilters | MetadataFilter | None = None, doc_ids: Iterable[str] | None = None
) -> list[int] | None:
    """Node ids of the documents passing ``filters`` and in ``doc_ids`` (None when nothing restricts)."""
    if filters is None and doc_ids is None:
        return None
    return [i for record in matching_documents(store.documents.values(), filters, doc_ids) for i in record.node_ids]
