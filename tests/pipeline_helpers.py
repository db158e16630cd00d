"""Small real corpora for the pipeline, store, CLI and crash tests.

The texts are the long descriptions of installed Python packages (the same corpus `--installed-docs` ingests),
cut to a few paragraphs so that a test embeds tens of chunks, not thousands. They exist wherever the project is
installed, with no network and no shared datasets.
"""

from __future__ import annotations

import re
from pathlib import Path

from llama_index.core import Document

from tempscale_index.index_config import IndexConfig
from tempscale_index.pipeline import iter_installed_docs

# Packages the project depends on, so they are installed wherever the tests run.
CORPUS_PACKAGES = (
    "faiss-cpu",
    "filelock",
    "huggingface-hub",
    "jinja2",
    "llama-index-core",
    "numpy",
    "pydantic",
    "pyyaml",
    "regex",
    "requests",
    "sentence-transformers",
    "tokenizers",
    "torch",
    "tqdm",
    "transformers",
    "typer",
)


def package_docs(count: int = 6, max_chars: int = 1500, skip: int = 0) -> list[Document]:
    """``count`` installed packages' descriptions as Documents (id ``dist:NAME``), each cut to ``max_chars``."""
    wanted = {name.lower() for name in CORPUS_PACKAGES}
    docs = [doc for doc in iter_installed_docs() if doc.metadata["distribution"].lower() in wanted]
    docs += [doc for doc in iter_installed_docs() if doc.metadata["distribution"].lower() not in wanted]
    picked = docs[skip : skip + count]
    assert len(picked) == count, f"only {len(docs)} installed packages have descriptions"
    for doc in picked:
        doc.set_content(_cut(doc.text, max_chars))
    return picked


def _cut(text: str, max_chars: int) -> str:
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text[:max_chars].rsplit(" ", 1)[0]


def write_corpus(folder: Path, docs: list[Document]) -> list[Path]:
    """Write each document as a UTF-8 text file named after its distribution."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in docs:
        path = folder / f"{doc.metadata['distribution'].lower()}.md"
        path.write_text(doc.text, encoding="utf-8")
        paths.append(path)
    return paths


def fake_config(dimension: int = 16, query_tau: float = 1.0) -> IndexConfig:
    """An IndexConfig for store tests that use random vectors instead of a model."""
    return IndexConfig(
        model_name="test-model",
        weights_sha256="0" * 64,
        dimension=dimension,
        max_length=128,
        normalize=True,
        query_instruction="",
        text_instruction="",
        document_temperature={"type": "constant", "value": 1.0},
        query_temperature={"type": "constant", "value": query_tau},
    )
