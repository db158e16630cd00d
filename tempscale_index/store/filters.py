"""LlamaIndex ``MetadataFilters`` over a store's documents, evaluated by LlamaIndex's own operator semantics.

Filters see each chunk's metadata (plain values and lists of them; see ``records.filterable``) plus its document's
id under ``doc_id``, ``ref_doc_id`` and ``document_id`` (the keys LlamaIndex's vector stores use). Records hold
that metadata in memory (what a document's chunks share once, each chunk's own values beside it), so choosing
the chunks a filter allows costs no disk read, and a document whose chunks share everything is decided once;
the chunk ids then restrict the FAISS search (exact scores for small sets, an id selector for large ones, on
Flat, IVF and HNSW alike).

Each leaf filter runs through ``llama_index.core.vector_stores.utils.build_metadata_filter_fn`` (the simple
vector store's matcher); nesting and the AND/OR/NOT conditions are combined here because that helper refuses
nested ``MetadataFilters``. An operator LlamaIndex may add later, which that helper does not know, is refused
by name rather than silently matching nothing. A leaf's answer depends on one metadata value only, so a compiled
filter remembers it per plain value, and compiled filters are kept per filter (``compiled_filters``): a filter a
retriever repeats costs a dictionary lookup per document, not a call of LlamaIndex's matcher.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

from tempscale_index.store.faiss_store import DocumentRecord, FaissStore
from tempscale_index.store.records import values_signature

DOC_ID_KEYS = ("doc_id", "ref_doc_id", "document_id")
_DOC_ID_KEY_SET = frozenset(DOC_ID_KEYS)
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
_MEMO_LIMIT = 10_000  # distinct values a leaf remembers its answer for (64 kept filters: bounded memory)
_COMPILED_LIMIT = 64  # distinct filters whose compiled matchers are kept
_compiled: OrderedDict[str, Matcher] = OrderedDict()
_compiled_mutex = threading.Lock()


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
    if len(parts) == 1 and condition in (FilterCondition.AND, FilterCondition.OR):
        return parts[0]
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
    memo: dict[tuple[type, Any], bool] = {}  # LlamaIndex's answer per plain value (typed: 1 and True differ)

    def matcher(metadata: Mapping[str, Any]) -> bool:
        value = metadata.get(leaf.key)
        remembered = (type(value), value) if value is None or isinstance(value, (str, int, float)) else None
        if remembered is not None and (answer := memo.get(remembered)) is not None:
            return answer
        try:
            answer = match(metadata)  # type: ignore[arg-type]
        except TypeError as exc:
            raise MetadataFilterError(f"{described} cannot be applied to the value {value!r}: {exc}") from None
        if remembered is not None and len(memo) < _MEMO_LIMIT:
            memo[remembered] = answer
        return answer

    return matcher


def compiled_filters(filters: MetadataFilters | MetadataFilter) -> Matcher:
    """``compile_filters``, kept for the last few distinct filters so that their remembered answers serve the
    next query with the same filter."""
    key = f"{type(filters).__name__}:{filters.model_dump_json()}"
    with _compiled_mutex:
        matcher = _compiled.get(key)
        if matcher is not None:
            _compiled.move_to_end(key)
            return matcher
    matcher = compile_filters(filters)
    with _compiled_mutex:
        _compiled[key] = matcher
        while len(_compiled) > _COMPILED_LIMIT:
            _compiled.popitem(last=False)
    return matcher


def document_metadata(record: DocumentRecord) -> dict[str, Any]:
    """What a filter sees of a document's chunks in common: their shared metadata and the document's id under
    each of ``DOC_ID_KEYS``."""
    return {**record.metadata, **dict.fromkeys(DOC_ID_KEYS, record.doc_id)}


def matching_nodes(
    records: Iterable[DocumentRecord],
    filters: MetadataFilters | MetadataFilter | None = None,
    doc_ids: Iterable[str] | None = None,
) -> dict[str, list[int]]:
    """Store ids per document of the chunks in ``doc_ids`` (all when None) that pass ``filters`` (all when
    None); documents with no passing chunk are left out."""
    wanted = set(doc_ids) if doc_ids is not None else None
    matcher = compiled_filters(filters) if filters is not None else None
    keys = tuple(sorted(filter_keys(filters))) if filters is not None else ()
    reads_doc_id = not _DOC_ID_KEY_SET.isdisjoint(keys)
    decided: dict[tuple[Any, ...], bool] = {}  # per-chunk values: one matcher call per distinct combination
    out: dict[str, list[int]] = {}
    for record in records:
        if wanted is not None and record.doc_id not in wanted:
            continue
        if matcher is None:
            ids = record.node_ids
        else:
            shared = document_metadata(record) if reads_doc_id else record.metadata
            ids = _passing_chunks(record, shared, matcher, keys, decided)
        if ids:
            out[record.doc_id] = ids
    return out


def filter_keys(filters: MetadataFilters | MetadataFilter) -> frozenset[str]:
    """Every metadata key a (nested) filter reads."""
    if isinstance(filters, MetadataFilter):
        return frozenset({filters.key})
    return frozenset().union(*(filter_keys(item) for item in filters.filters))


def _passing_chunks(
    record: DocumentRecord,
    shared: Mapping[str, Any],
    matcher: Matcher,
    keys: tuple[str, ...],
    decided: dict[tuple[Any, ...], bool],
) -> list[int]:
    """The record's chunks passing ``matcher``, ``shared`` being what they have in common. Chunks that agree on
    every filtered key (in most documents: all of them) are decided together; otherwise each distinct combination
    of the filtered values once (``decided`` carries it across documents)."""
    varying = record.own_keys.intersection(keys) if record.node_metadata else None
    if varying:
        varying -= _DOC_ID_KEY_SET
    if not varying:
        return record.node_ids if matcher(shared) else []
    ordered = tuple(sorted(varying))
    base = values_signature(shared, keys)
    passing: list[int] = []
    for own, ids in record.groups(ordered).items():
        key = (base, ordered, own)
        answer = decided.get(key)
        if answer is None:
            chunk = record.node_metadata.get(ids[0], {})
            answer = decided[key] = matcher({**shared, **{k: chunk[k] for k in ordered if k in chunk}})
        if answer:
            passing.extend(ids)
    return sorted(passing) if len(passing) < len(record.node_ids) else record.node_ids


def allowed_node_ids(
    store: FaissStore, filters: MetadataFilters | MetadataFilter | None = None, doc_ids: Iterable[str] | None = None
) -> list[int] | None:
    """Node ids of the chunks passing ``filters`` in the documents ``doc_ids`` (None when nothing restricts)."""
    if filters is None and doc_ids is None:
        return None
    if filters is not None:
        store.ensure_chunk_metadata()
    return [i for ids in matching_nodes(store.documents.values(), filters, doc_ids).values() for i in ids]
