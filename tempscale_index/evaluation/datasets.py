"""Retrieval test collections in one shape: corpus, queries, document qrels and optional span qrels.

Three layouts load into :class:`RetrievalDataset`: BEIR folders, LlamaIndex ``EmbeddingQAFinetuneDataset`` JSON
and QMSum's raw meeting JSON. Span qrels (relevant character ranges inside a document) are what chunk-level
scoring needs: a chunk is relevant when its character range overlaps one of them. Malformed files fail with the
file, line and field at fault, because a silently skipped line changes every metric.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

QMSumQueries = Literal["summaries", "questions"]
DatasetFormat = Literal["auto", "beir", "llamaindex", "qmsum"]
Span = tuple[int, int]


class DatasetFormatError(ValueError):
    """A dataset file is malformed; the message names the file, the line (when it has lines) and the field."""


@dataclass
class RetrievalDataset:
    """A test collection; ``spans`` holds the relevant character ranges ``[start, end)`` per query and document."""

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    spans: dict[str, dict[str, list[Span]]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for query_id, judged in self.qrels.items():
            if query_id not in self.queries:
                raise DatasetFormatError(f"{self.name}: qrels name query {query_id!r}, which has no text")
            unknown = [doc_id for doc_id in judged if doc_id not in self.corpus]
            if unknown:
                raise DatasetFormatError(
                    f"{self.name}: qrels of query {query_id!r} name documents missing from the corpus: {unknown[:5]}"
                )
        for query_id, by_doc in self.spans.items():
            for doc_id, ranges in by_doc.items():
                length = len(self.corpus.get(doc_id, ""))
                for start, end in ranges:
                    if not 0 <= start < end <= length:
                        raise DatasetFormatError(
                            f"{self.name}: span [{start}, {end}) of query {query_id!r} lies outside document "
                            f"{doc_id!r} ({length} characters)"
                        )

    @property
    def judged_query_ids(self) -> list[str]:
        """Queries with at least one relevant document: the ones every metric is averaged over."""
        return [query_id for query_id, judged in self.qrels.items() if any(rel > 0 for rel in judged.values())]

    def subset(self, query_ids: Iterable[str], name: str | None = None) -> RetrievalDataset:
        """The same corpus with only ``query_ids`` (a dev/test split of the queries)."""
        keep = [query_id for query_id in query_ids]
        missing = [query_id for query_id in keep if query_id not in self.queries]
        if missing:
            raise KeyError(f"{self.name} has no queries {missing[:5]}")
        return RetrievalDataset(
            name=name or self.name,
            corpus=self.corpus,
            queries={query_id: self.queries[query_id] for query_id in keep},
            qrels={query_id: self.qrels[query_id] for query_id in keep if query_id in self.qrels},
            spans={query_id: self.spans[query_id] for query_id in keep if query_id in self.spans},
            titles=self.titles,
        )


# -- BEIR ------------------------------------------------------------------------------------------------------


def load_beir(path: str | Path, split: str = "test") -> RetrievalDataset:
    """A BEIR folder: ``corpus.jsonl`` (``_id``, ``text``, optional ``title``), ``queries.jsonl`` (``_id``,
    ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``; header optional).

    A title is part of the document's text (prepended, as BEIR models see it) and kept in ``titles``.
    """
    root = Path(path)
    qrels_file = root / "qrels" / f"{split}.tsv"
    for required in (root / "corpus.jsonl", root / "queries.jsonl", qrels_file):
        if not required.is_file():
            raise FileNotFoundError(f"BEIR folder {root}: missing {required.relative_to(root)}")
    corpus: dict[str, str] = {}
    titles: dict[str, str] = {}
    for location, record in _read_jsonl(root / "corpus.jsonl"):
        doc_id = _required_str(record, "_id", location)
        text = _required_str(record, "text", location, allow_empty=True)
        title = _optional_str(record, "title", location)
        if title:
            titles[doc_id] = title
        corpus[doc_id] = f"{title}\n\n{text}" if title else text
    queries = {
        _required_str(record, "_id", location): _required_str(record, "text", location)
        for location, record in _read_jsonl(root / "queries.jsonl")
    }
    qrels: dict[str, dict[str, int]] = {}
    for location, query_id, doc_id, relevance in _read_qrels_tsv(qrels_file):
        if query_id not in queries:
            raise DatasetFormatError(f"{location}: query-id {query_id!r} is not in queries.jsonl")
        if doc_id not in corpus:
            raise DatasetFormatError(f"{location}: corpus-id {doc_id!r} is not in corpus.jsonl")
        qrels.setdefault(query_id, {})[doc_id] = relevance
    queries = {query_id: queries[query_id] for query_id in qrels}  # BEIR evaluates only the split's queries
    return RetrievalDataset(name=f"{root.name}/{split}", corpus=corpus, queries=queries, qrels=qrels, titles=titles)


def _read_jsonl(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with file.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{file}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"{location}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DatasetFormatError(f"{location}: expected a JSON object, got {type(record).__name__}")
            yield location, record


def _read_qrels_tsv(file: Path) -> Iterator[tuple[str, str, str, int]]:
    with file.open(encoding="utf-8", newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not row or not "".join(row).strip():
                continue
            location = f"{file}:{line_number}"
            if line_number == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue
            if len(row) != 3:
                raise DatasetFormatError(
                    f"{location}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(row)}"
                )
            query_id, doc_id, score = (cell.strip() for cell in row)
            try:
                relevance = int(score)
            except ValueError:
                raise DatasetFormatError(f"{location}: field 'score' must be an integer, got {score!r}") from None
            yield location, query_id, doc_id, relevance


# -- LlamaIndex EmbeddingQAFinetuneDataset ---------------------------------------------------------------------


def load_llamaindex_qa(path: str | Path) -> RetrievalDataset:
    """LlamaIndex's ``EmbeddingQAFinetuneDataset`` JSON (``queries``, ``corpus``, ``relevant_docs``), as written
    by ``generate_qa_embedding_pairs(...).save_json(path)`` (``llama-index-finetuning``)."""
    file = Path(path)
    data = _read_json(file)
    for key in ("queries", "corpus", "relevant_docs"):
        if not isinstance(data.get(key), dict):
            raise DatasetFormatError(f"{file}: field {key!r} must be an object mapping ids to values")
    corpus = {doc_id: _expect_str(text, f"{file}: corpus[{doc_id!r}]") for doc_id, text in data["corpus"].items()}
    queries = {
        query_id: _expect_str(text, f"{file}: queries[{query_id!r}]") for query_id, text in data["queries"].items()
    }
    qrels: dict[str, dict[str, int]] = {}
    for query_id, doc_ids in data["relevant_docs"].items():
        where = f"{file}: relevant_docs[{query_id!r}]"
        if query_id not in queries:
            raise DatasetFormatError(f"{where}: query id is not in 'queries'")
        if not isinstance(doc_ids, list) or not all(isinstance(doc_id, str) for doc_id in doc_ids):
            raise DatasetFormatError(f"{where}: must be a list of corpus ids, got {doc_ids!r:.80}")
        unknown = [doc_id for doc_id in doc_ids if doc_id not in corpus]
        if unknown:
            raise DatasetFormatError(f"{where}: ids not in 'corpus': {unknown[:5]}")
        qrels[query_id] = dict.fromkeys(doc_ids, 1)
    return RetrievalDataset(name=file.stem, corpus=corpus, queries=queries, qrels=qrels)


# -- QMSum -----------------------------------------------------------------------------------------------------


def load_qmsum(path: str | Path, queries: QMSumQueries = "summaries") -> RetrievalDataset:
    """QMSum meetings (a folder of raw meeting JSON files, or one file) as a long-document collection.

    Each meeting is one document, its turns joined as ``"Speaker: content"`` lines. ``queries="summaries"``
    follows LongEmbed: every reference answer (general and specific) is a query whose relevant document is its
    meeting. ``queries="questions"`` uses the specific questions themselves (the general ones, such as
    "Summarize the meeting", do not tell meetings apart); their ``relevant_text_span`` turn ranges become span
    qrels, the character ranges of those turns in the document.
    """
    if queries not in ("summaries", "questions"):
        raise ValueError(f"queries must be 'summaries' or 'questions', got {queries!r}")
    source = Path(path)
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if not files or not files[0].is_file():
        raise FileNotFoundError(f"no QMSum meeting JSON files at {source}")
    dataset = RetrievalDataset(name=f"qmsum-{source.stem}-{queries}", corpus={}, queries={}, qrels={})
    for file in files:
        _add_meeting(dataset, file, queries)
    return dataset


def _add_meeting(dataset: RetrievalDataset, file: Path, queries: QMSumQueries) -> None:
    meeting = _read_json(file)
    doc_id = file.stem
    turns = meeting.get("meeting_transcripts")
    if not isinstance(turns, list) or not turns:
        raise DatasetFormatError(f"{file}: field 'meeting_transcripts' must be a non-empty list of turns")
    lines, turn_ranges, offset = [], [], 0
    for position, turn in enumerate(turns):
        where = f"{file}: meeting_transcripts[{position}]"
        if not isinstance(turn, dict):
            raise DatasetFormatError(f"{where}: expected an object with 'speaker' and 'content'")
        speaker = _expect_str(turn.get("speaker"), where + ".speaker")
        line = f"{speaker}: {_expect_str(turn.get('content'), where + '.content')}"
        lines.append(line)
        turn_ranges.append((offset, offset + len(line)))
        offset += len(line) + 1  # the newline joining turns
    dataset.corpus[doc_id] = "\n".join(lines)

    specific = _query_list(meeting, "specific_query_list", file)
    if queries == "summaries":
        general = _query_list(meeting, "general_query_list", file)
        entries = [("general", i, item) for i, item in enumerate(general)]
        entries += [("specific", i, item) for i, item in enumerate(specific)]
        for kind, position, item in entries:
            query_id = f"{doc_id}/{kind}-{position}"
            dataset.queries[query_id] = _expect_str(item.get("answer"), f"{file}: {kind}_query_list[{position}].answer")
            dataset.qrels[query_id] = {doc_id: 1}
        return
    for position, item in enumerate(specific):
        where = f"{file}: specific_query_list[{position}]"
        query_id = f"{doc_id}/specific-{position}"
        dataset.queries[query_id] = _expect_str(item.get("query"), where + ".query")
        dataset.qrels[query_id] = {doc_id: 1}
        turn_spans = _turn_spans(item.get("relevant_text_span"), len(turns), where + ".relevant_text_span")
        if turn_spans:
            dataset.spans[query_id] = {
                doc_id: [(turn_ranges[first][0], turn_ranges[last][1]) for first, last in turn_spans]
            }


def _query_list(meeting: dict[str, Any], key: str, file: Path) -> list[dict[str, Any]]:
    items = meeting.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise DatasetFormatError(f"{file}: field {key!r} must be a list of objects")
    return items


def _turn_spans(value: Any, n_turns: int, where: str) -> list[tuple[int, int]]:
    """Inclusive ``[start_turn, end_turn]`` pairs (QMSum writes them as strings) as validated int pairs."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise DatasetFormatError(f"{where}: must be a list of [start_turn, end_turn] pairs, got {value!r:.80}")
    spans = []
    for pair in value:
        try:
            first, last = (int(turn) for turn in pair)
        except (TypeError, ValueError):
            raise DatasetFormatError(f"{where}: {pair!r} is not a [start_turn, end_turn] pair of integers") from None
        if not 0 <= first <= last < n_turns:
            raise DatasetFormatError(f"{where}: turns {pair!r} fall outside the meeting's {n_turns} turns")
        spans.append((first, last))
    return spans


# -- any of them -----------------------------------------------------------------------------------------------


def load_dataset(
    path: str | Path, format: DatasetFormat = "auto", split: str = "test", queries: QMSumQueries = "summaries"
) -> RetrievalDataset:
    """Load ``path`` in ``format``; ``"auto"`` recognises a BEIR folder, a LlamaIndex QA JSON file and QMSum
    meeting JSON (a folder of them or one file)."""
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"dataset path {source} does not exist")
    if format == "auto":
        format = _detect_format(source)
    if format == "beir":
        return load_beir(source, split)
    if format == "llamaindex":
        return load_llamaindex_qa(source)
    if format == "qmsum":
        return load_qmsum(source, queries)
    raise ValueError(f"format must be one of auto, beir, llamaindex, qmsum; got {format!r}")


def _detect_format(source: Path) -> DatasetFormat:
    if source.is_dir():
        if (source / "corpus.jsonl").is_file():
            return "beir"
        if next(source.glob("*.json"), None) is not None:
            return "qmsum"
        raise DatasetFormatError(f"{source}: neither a BEIR folder (corpus.jsonl) nor a folder of QMSum JSON files")
    data = _read_json(source)
    if "relevant_docs" in data:
        return "llamaindex"
    if "meeting_transcripts" in data:
        return "qmsum"
    raise DatasetFormatError(
        f"{source}: cannot tell the format (no 'relevant_docs' or 'meeting_transcripts' field); pass --format"
    )


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{file}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _expect_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DatasetFormatError(f"{where}: expected a string, got {type(value).__name__}: {value!r:.80}")
    return value


def _required_str(record: dict[str, Any], key: str, location: str, allow_empty: bool = False) -> str:
    if key not in record:
        raise DatasetFormatError(f"{location}: missing field {key!r}")
    value = record[key]
    if key == "_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # numeric ids are common in BEIR exports
    value = _expect_str(value, f"{location}: field {key!r}")
    if not allow_empty and not value.strip():
        raise DatasetFormatError(f"{location}: field {key!r} is empty")
    return value


def _optional_str(record: dict[str, Any], key: str, location: str) -> str:
    value = record.get(key)
    return "" if value is None else _expect_str(value, f"{location}: field {key!r}")
