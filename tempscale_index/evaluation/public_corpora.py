"""Labelled long-document corpora from public GitHub-hosted datasets, written as BEIR folders with span qrels.

Each builder turns one dataset file (extracted from a repository snapshot with ``git show``) into a
:class:`RetrievalDataset` whose documents are whole source documents (an article, a privacy policy, a financial
report excerpt, an abstract), so that chunking splits them as ingestion would. Where the dataset marks where the
answer lies (an answer span, a relevant paragraph), that character range becomes a span qrel, and chunk-level
scoring needs nothing else. ``write_beir`` writes the BEIR files the loader reads plus ``spans.jsonl`` and
``SOURCE.json`` (origin and licence); ``load_public`` reads both back.

Command line: ``python -m tempscale_index.evaluation.public_corpora {ami,pubmedqa,squad,squality,tatqa} SOURCE OUT
[--max-queries N] [--max-documents N] [--source TEXT] [--licence TEXT]``; SOURCE is a JSON file, a JSON-lines file
(``.jsonl``) or, for ``ami``, a folder of ``.story`` files.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tempscale_index.evaluation.datasets import RetrievalDataset, Span, load_beir

PARAGRAPH_SEPARATOR = "\n\n"


def squad_corpus(data: dict[str, Any], name: str) -> RetrievalDataset:
    """SQuAD-format JSON (SQuAD, PolicyQA): each article's paragraphs joined form one document; each answerable
    question's answer spans, shifted to the article, are its span qrels."""
    dataset = RetrievalDataset(name=name, corpus={}, queries={}, qrels={})
    for article_number, article in enumerate(data["data"]):
        doc_id = f"doc-{article_number}"
        pieces: list[str] = []
        offset = 0
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                spans = [
                    (offset + answer["answer_start"], offset + answer["answer_start"] + len(answer["text"]))
                    for answer in qa.get("answers", [])
                    if answer["text"].strip()
                ]
                if spans and not qa.get("is_impossible", False):
                    _add_query(dataset, str(qa["id"]), qa["question"], doc_id, spans)
            pieces.append(context)
            offset += len(context) + len(PARAGRAPH_SEPARATOR)
        dataset.corpus[doc_id] = PARAGRAPH_SEPARATOR.join(pieces)
        dataset.titles[doc_id] = str(article.get("title", doc_id))
    return dataset


def pubmedqa_corpus(data: dict[str, Any], name: str) -> RetrievalDataset:
    """PubMedQA (ori_pqal.json): the abstract (its sections and conclusion) is the document, the question
    (the article's title as a question) its one query; abstracts are short, so document level only."""
    dataset = RetrievalDataset(name=name, corpus={}, queries={}, qrels={})
    for pubmed_id, item in data.items():
        doc_id = f"pmid-{pubmed_id}"
        dataset.corpus[doc_id] = PARAGRAPH_SEPARATOR.join([*item["CONTEXTS"], item["LONG_ANSWER"]])
        _add_query(dataset, doc_id, item["QUESTION"], doc_id, [])
    return dataset


def tatqa_corpus(data: list[dict[str, Any]], name: str) -> RetrievalDataset:
    """TAT-QA: a financial report excerpt (its table as ``|``-separated rows, then its paragraphs) is the
    document; the paragraphs a question names as relevant are its span qrels (table questions have none)."""
    dataset = RetrievalDataset(name=name, corpus={}, queries={}, qrels={})
    for number, item in enumerate(data):
        doc_id = f"report-{number}"
        pieces = [" | ".join(cell for cell in row if cell.strip()) for row in item["table"]["table"]]
        pieces = [PARAGRAPH_SEPARATOR.join(piece for piece in pieces if piece)]
        paragraph_spans: dict[str, Span] = {}
        offset = len(pieces[0]) + len(PARAGRAPH_SEPARATOR)
        for paragraph in item["paragraphs"]:
            paragraph_spans[str(paragraph["order"])] = (offset, offset + len(paragraph["text"]))
            pieces.append(paragraph["text"])
            offset += len(paragraph["text"]) + len(PARAGRAPH_SEPARATOR)
        dataset.corpus[doc_id] = PARAGRAPH_SEPARATOR.join(pieces)
        for question in item["questions"]:
            spans = [paragraph_spans[str(order)] for order in question.get("rel_paragraphs", [])]
            spans = [span for span in spans if span[1] > span[0]]
            _add_query(dataset, str(question["uid"]), question["question"], doc_id, spans)
    return dataset


def ami_corpus(stories: dict[str, str], name: str) -> RetrievalDataset:
    """AMI meetings as ``.story`` files (github.com/gcunhase/AMICorpusXML): the transcript before the first
    ``@highlight`` is the document, the abstractive summary (its highlights joined) its one query; document level."""
    dataset = RetrievalDataset(name=name, corpus={}, queries={}, qrels={})
    for file_name, story in sorted(stories.items()):
        transcript, *highlights = story.split("@highlight")
        summary = " ".join(" ".join(part.split()) for part in highlights if part.strip())
        if transcript.strip() and summary:
            doc_id = Path(file_name).stem
            dataset.corpus[doc_id] = transcript.strip()
            _add_query(dataset, doc_id, summary, doc_id, [])
    return dataset


def squality_corpus(records: list[dict[str, Any]], name: str) -> RetrievalDataset:
    """SQuALITY (a JSON line per Gutenberg story): the story is the document; each question's first reference
    response (a summary of one aspect of the story) is a query. Document level; the question wordings are shared
    across stories ("What is the plot of the story?"), so they are not used as queries."""
    dataset = RetrievalDataset(name=name, corpus={}, queries={}, qrels={})
    for record in records:
        doc_id = f"story-{record['metadata']['passage_id']}"
        dataset.corpus[doc_id] = record["document"].strip()
        for question in record["questions"]:
            responses = [response["response_text"].strip() for response in question["responses"]]
            if responses and responses[0]:
                _add_query(dataset, f"{doc_id}-q{question['question_number']}", responses[0], doc_id, [])
    return dataset


def _add_query(dataset: RetrievalDataset, query_id: str, text: str, doc_id: str, spans: list[Span]) -> None:
    dataset.queries[query_id] = text
    dataset.qrels[query_id] = {doc_id: 1}
    if spans:
        dataset.spans[query_id] = {doc_id: spans}


BUILDERS: dict[str, Callable[[Any, str], RetrievalDataset]] = {
    "ami": ami_corpus,
    "squad": squad_corpus,
    "squality": squality_corpus,
    "pubmedqa": pubmedqa_corpus,
    "tatqa": tatqa_corpus,
}


def capped(
    dataset: RetrievalDataset, max_documents: int | None, max_queries: int | None, seed: int = 0
) -> RetrievalDataset:
    """A deterministic random subset: at most ``max_documents`` documents, then ``max_queries`` of their queries.

    Questions that occur twice (two annotators, one wording) are kept once, so no query has two answers.
    """
    doc_ids = list(dataset.corpus)
    if max_documents is not None and len(doc_ids) > max_documents:
        doc_ids = sorted(random.Random(seed).sample(doc_ids, max_documents), key=list(dataset.corpus).index)
    kept_docs = set(doc_ids)
    seen_texts: set[tuple[str, str]] = set()
    query_ids = []
    for query_id, judged in dataset.qrels.items():
        doc_id = next(iter(judged))
        key = (doc_id, dataset.queries[query_id].strip().lower())
        if doc_id in kept_docs and key not in seen_texts:
            seen_texts.add(key)
            query_ids.append(query_id)
    if max_queries is not None and len(query_ids) > max_queries:
        query_ids = sorted(random.Random(seed).sample(query_ids, max_queries), key=query_ids.index)
    subset = dataset.subset(query_ids)
    subset.corpus = {doc_id: dataset.corpus[doc_id] for doc_id in doc_ids}
    return subset


def write_beir(dataset: RetrievalDataset, out: str | Path, source: dict[str, str]) -> Path:
    """``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``, ``spans.jsonl`` and ``SOURCE.json`` under ``out``."""
    root = Path(out)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, text in dataset.corpus.items():
            handle.write(json.dumps({"_id": doc_id, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, text in dataset.queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    with (root / "qrels" / "test.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in dataset.qrels.items():
            handle.writelines(f"{query_id}\t{doc_id}\t{score}\n" for doc_id, score in judged.items())
    with (root / "spans.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, by_doc in dataset.spans.items():
            for doc_id, spans in by_doc.items():
                handle.write(json.dumps({"query-id": query_id, "corpus-id": doc_id, "spans": spans}) + "\n")
    (root / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
    return root


def load_public(path: str | Path) -> RetrievalDataset:
    """A folder ``write_beir`` wrote: the BEIR dataset with its span qrels attached."""
    root = Path(path)
    dataset = load_beir(root)
    spans_file = root / "spans.jsonl"
    if spans_file.is_file():
        for line in spans_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["query-id"] in dataset.queries:
                ranges = [(int(start), int(end)) for start, end in record["spans"]]
                dataset.spans.setdefault(record["query-id"], {})[record["corpus-id"]] = ranges
    dataset.name = root.name
    return RetrievalDataset(dataset.name, dataset.corpus, dataset.queries, dataset.qrels, dataset.spans, dataset.titles)


def read_source(path: Path) -> Any:
    """A JSON file, a JSON-lines file (a list of records), or a folder (file name -> text)."""
    if path.is_dir():
        return {file.name: file.read_text(encoding="utf-8") for file in sorted(path.iterdir()) if file.is_file()}
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a public QA dataset file as a BEIR folder with spans.")
    parser.add_argument("kind", choices=sorted(BUILDERS))
    parser.add_argument("file", type=Path, help="the dataset's JSON / JSON-lines file, or folder (ami)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-documents", type=int, default=None)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--source", default="", help="where the file came from (repository, commit, path)")
    parser.add_argument("--licence", default="", help="the dataset's licence")
    args = parser.parse_args(argv)
    try:
        dataset = BUILDERS[args.kind](read_source(args.file), args.out.name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        parser.error(f"cannot read {args.file} as {args.kind} data: {type(error).__name__}: {error}")
    dataset = capped(dataset, args.max_documents, args.max_queries)
    write_beir(dataset, args.out, {"source": args.source, "licence": args.licence, "builder": args.kind})
    print(
        f"wrote {args.out}: {len(dataset.corpus)} documents, {len(dataset.queries)} queries, "
        f"{len(dataset.spans)} with span qrels"
    )


if __name__ == "__main__":
    main()
