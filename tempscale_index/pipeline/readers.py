"""Where documents come from: files and folders (LlamaIndex readers), or the installed packages' documentation.

Both yield LlamaIndex ``Document``s one file at a time (never the whole corpus at once) with a stable
``doc_id``: a file's resolved path, or ``dist:NAME`` for an installed distribution. A file that has several
parts (a PDF's pages) yields several ``Document``s with the same ``doc_id``; the pipeline treats them as one
document.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from llama_index.core import Document, SimpleDirectoryReader
from llama_index.core.readers.file.base import default_file_metadata_func

from tempscale_index.node_metadata import exclude_file_facts

MIN_DESCRIPTION_CHARS = 200


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class ReadReport:
    """Files that could not be read (each warned about once) and how many were read."""

    files_read: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)


def list_files(
    paths: Iterable[str | os.PathLike[str]], recursive: bool = True, extensions: Iterable[str] | None = None
) -> list[Path]:
    """The files under ``paths`` (hidden files and folders left out), sorted; raises for a missing path."""
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions} if extensions else None
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"path not found: {raw}")
        if path.is_file():
            files.append(path.resolve())
            continue
        pattern = path.rglob("*") if recursive else path.glob("*")
        for candidate in pattern:
            relative = candidate.relative_to(path)
            if any(part.startswith(".") for part in relative.parts) or not candidate.is_file():
                continue
            if exts is None or candidate.suffix.lower() in exts:
                files.append(candidate.resolve())
    return sorted(dict.fromkeys(files))


def iter_file_documents(files: Iterable[Path], report: ReadReport | None = None) -> Iterator[Document]:
    """Read each file with LlamaIndex's ``SimpleDirectoryReader`` machinery; unreadable files are skipped with a
    warning and recorded in ``report`` (text files must be valid UTF-8)."""
    report = report if report is not None else ReadReport()
    extractors: dict = {}  # reader instances by suffix, created on first use by load_file
    # load_file looks up optional readers (PDF, DOCX…) for every file and logs their absence each time.
    logging.getLogger("llama_index.core.readers.file.base").setLevel(logging.ERROR)
    for path in files:
        try:
            parts = SimpleDirectoryReader.load_file(
                input_file=path,
                file_metadata=default_file_metadata_func,
                file_extractor=extractors,
                filename_as_id=False,
                errors="strict",
                raise_on_error=True,
            )
        except Exception as exc:  # any reader failure: permissions, encoding, a missing optional parser
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
            report.skipped.append(SkippedFile(str(path), reason))
            warnings.warn(f"skipped unreadable file {path} ({reason})", UserWarning, stacklevel=2)
            continue
        report.files_read += 1
        doc_id = str(path)
        for part in parts:
            part.id_ = doc_id
            part.metadata.setdefault("file_name", path.name)
            part.metadata.setdefault("file_path", str(path))
            exclude_file_facts(part)
            yield part


def iter_installed_docs(min_chars: int = MIN_DESCRIPTION_CHARS) -> Iterator[Document]:
    """The long descriptions (README text) of the installed Python distributions, one document each.

    This corpus exists on any machine with the package installed, offline: the README's first command uses it.
    """
    seen: set[str] = set()
    distributions = sorted(
        importlib_metadata.distributions(), key=lambda dist: (dist.metadata.get("Name") or "").lower()
    )
    for dist in distributions:
        meta = dist.metadata
        name = meta.get("Name")
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        text = (meta.get_payload() or meta.get("Description") or "").strip()
        if len(text) < min_chars or text == "UNKNOWN":
            continue
        document = Document(
            id_=f"dist:{name.lower()}",
            text=text,
            metadata={
                "file_name": name,
                "distribution": name,
                "version": meta.get("Version") or "",
                "summary": meta.get("Summary") or "",
            },
        )
        exclude_file_facts(document)
        document.excluded_embed_metadata_keys.append("version")  # not content: a release changes no text
        yield document
