"""A second real retrieval corpus, assembled offline from documentation that ships with Python and its packages.

QMSum is one domain (meeting transcripts); defaults tuned on it alone may hurt elsewhere. This corpus mixes
what any Python installation carries: the long descriptions (READMEs) of installed distributions, on subjects from
numerical computing to web clients, and the docstrings of the standard library's modules, classes and
functions. The query for each document is its own one-line summary, which PEP 257 and the core-metadata spec
define as exactly that: a distribution's ``Summary`` field for its description, a docstring's first line for the
rest of the docstring. It is the summary-as-query protocol LongEmbed uses on QMSum, and every document has one
relevant query. Document lengths range from a paragraph to a long README, so length-dependent schedules matter.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from tempscale_index.evaluation.datasets import RetrievalDataset

MIN_BODY_CHARS = 300
MIN_QUERY_WORDS = 5


def load_package_docs(max_document_chars: int = 6000, include_stdlib: bool = True) -> RetrievalDataset:
    """Summary-to-documentation pairs from installed distributions (and the stdlib), deduplicated.

    A summary that introduces two documents (two forks of one package, overloads documented alike) would have
    two relevant answers and is dropped, as are documents shorter than ``MIN_BODY_CHARS`` and queries shorter
    than ``MIN_QUERY_WORDS`` words. ``max_document_chars`` keeps a few very long READMEs from dominating the
    embedding time.
    """
    pairs = list(_distribution_pairs())
    if include_stdlib:
        pairs += list(_stdlib_pairs())
    by_query: dict[str, list[tuple[str, str]]] = {}
    seen_bodies: set[str] = set()
    for doc_id, summary, body in pairs:
        body = body.replace(summary, " ").strip()[:max_document_chars]
        if len(body) < MIN_BODY_CHARS or len(summary.split()) < MIN_QUERY_WORDS or body in seen_bodies:
            continue
        seen_bodies.add(body)
        by_query.setdefault(summary.strip(), []).append((doc_id, body))
    corpus, queries, qrels = {}, {}, {}
    for summary, documents in sorted(by_query.items(), key=lambda item: item[1][0][0]):
        if len(documents) != 1:
            continue
        doc_id, body = documents[0]
        corpus[doc_id] = body
        queries[doc_id] = summary
        qrels[doc_id] = {doc_id: 1}
    if not corpus:
        raise ValueError("no documentation with a summary was found in this Python installation")
    return RetrievalDataset(name="package-docs", corpus=corpus, queries=queries, qrels=qrels)


def _distribution_pairs() -> Iterator[tuple[str, str, str]]:
    for distribution in importlib.metadata.distributions():
        metadata = distribution.metadata
        name, summary = metadata.get("Name"), metadata.get("Summary")
        body = metadata.get_payload() or metadata.get("Description") or ""
        if name and summary and summary != "UNKNOWN" and isinstance(body, str):
            yield f"pypi:{name.lower()}", summary.strip(), body


def _stdlib_pairs() -> Iterator[tuple[str, str, str]]:
    """Module, class and public function docstrings of the stdlib, parsed (never imported: no side effects)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/__init__.py")):
        module = path.parent.name if path.name == "__init__.py" else path.stem
        if module.startswith("_") or "test" in module:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        objects = [(module, tree)] + [
            (f"{module}.{node.name}", node)
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
        ]
        for qualified_name, node in objects:
            docstring = ast.get_docstring(node)
            if docstring:
                first_line, _, rest = docstring.strip().partition("\n")
                yield f"stdlib:{qualified_name}", first_line.strip(), rest


def write_beir(dataset: RetrievalDataset, folder: str | Path) -> Path:
    """Save ``dataset`` as a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``), so that every
    command reading datasets can use it and a run can be repeated on exactly the same texts."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as corpus:
        for doc_id, text in dataset.corpus.items():
            corpus.write(json.dumps({"_id": doc_id, "title": dataset.titles.get(doc_id, ""), "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as queries:
        for query_id, text in dataset.queries.items():
            queries.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    with (folder / "qrels" / "test.tsv").open("w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in dataset.qrels.items():
            qrels.writelines(f"{query_id}\t{doc_id}\t{rel}\n" for doc_id, rel in judged.items())
    return folder


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tempscale_index.evaluation.package_docs OUTPUT_FOLDER")
    dataset = load_package_docs()
    print(f"wrote {write_beir(dataset, sys.argv[1])}: {len(dataset.corpus)} documents, {len(dataset.queries)} queries")
