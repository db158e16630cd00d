"""The manifest of a committed version: how it was built, what it holds, and the size and SHA-256 of each file.

The manifest vouches for every other file; its own SHA-256 is sealed beside it in ``manifest.sha256`` (the
``sha256sum`` format) and also recorded in ``CURRENT`` (see ``versions.py``). Every load checks the seal, so a
version verifies itself even when ``CURRENT`` is lost or rewritten by hand: an edited or half-written manifest is
refused rather than trusted. A version without a seal (written before seals existed) is trusted only through a
``CURRENT`` that records its checksum.
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import faiss
from pydantic import ValidationError

from tempscale_index.index_config import IndexConfig
from tempscale_index.store.errors import CorruptIndexError, StoreError
from tempscale_index.store.files import HashingWriter, sha256_file

FORMAT = "tempscale-index/faiss"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SEAL_FILE = "manifest.sha256"  # the manifest's SHA-256, inside the version it vouches for
REQUIRED_FIELDS = frozenset({"version", "config", "index_factory", "counts", "next_id", "files"})
_PACKAGES = (
    "tempscale-index",
    "faiss-cpu",
    "numpy",
    "torch",
    "transformers",
    "sentence-transformers",
    "llama-index-core",
)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shaped the index (recorded for whoever debugs it later)."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    versions["faiss"] = faiss.__version__
    return versions


def new_manifest(version: int, files: dict[str, dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A manifest for ``version`` holding ``files`` and the build facts in ``fields``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
        "packages": package_versions(),
        "files": files,
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> str:
    """Write the manifest and its seal (both fsynced); returns the manifest's SHA-256, which the caller also
    records in ``CURRENT``."""
    with HashingWriter(path) as writer:
        writer.write(json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
        checksum = str(writer.close()["sha256"])
    with HashingWriter(path.with_name(SEAL_FILE)) as seal:
        seal.write(f"{checksum}  {path.name}\n".encode())
        seal.close()
    return checksum


def read_seal(path: Path) -> str | None:
    """The SHA-256 sealed beside the manifest at ``path`` (None: no seal, an older version)."""
    try:
        text = path.with_name(SEAL_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptIndexError(f"{path.with_name(SEAL_FILE)} is unreadable: {exc}") from None
    checksum, _, name = text.strip().partition("  ")
    if name != path.name or len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
        raise CorruptIndexError(
            f"{path.with_name(SEAL_FILE)} is corrupted (expected '<SHA-256>  {path.name}'); restore it or rebuild"
        )
    return checksum


def read_manifest(path: Path, expected_sha256: str | None) -> dict[str, Any]:
    """Parse and check a manifest: its bytes must match its seal and ``expected_sha256`` (from ``CURRENT``), and
    at least one of the two must exist.

    ``FileNotFoundError`` propagates (a reader may retry on a newer version); anything else wrong raises
    ``CorruptIndexError`` naming the file.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptIndexError(f"{path} is unreadable: {exc}") from None
    actual, sealed = hashlib.sha256(data).hexdigest(), read_seal(path)
    for recorded, where in ((expected_sha256, "CURRENT"), (sealed, SEAL_FILE)):
        if recorded is not None and actual != recorded:
            raise CorruptIndexError(
                f"{path} does not match the SHA-256 recorded in {where}: the manifest was edited or half-written; "
                "restore it or rebuild the index"
            )
    if expected_sha256 is None and sealed is None:
        raise CorruptIndexError(
            f"{path} cannot be verified: it has no {SEAL_FILE} beside it and CURRENT records no checksum for it "
            "(an older index whose CURRENT was lost or rewritten); restore CURRENT from a backup or rebuild the index"
        )
    try:
        manifest = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise CorruptIndexError(f"{path} is not valid JSON (truncated or corrupted): {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptIndexError(f"{path} is not a tempscale-index manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{path} has format version {manifest.get('format_version')}; this tempscale-index reads "
            f"version {FORMAT_VERSION}"
        )
    missing = REQUIRED_FIELDS - set(manifest)
    if missing:
        raise CorruptIndexError(f"{path} lacks {sorted(missing)}")
    return manifest


def manifest_config(manifest: dict[str, Any], path: Path) -> IndexConfig:
    """The manifest's embedding configuration; an invalid one is one ``CorruptIndexError`` sentence."""
    try:
        return IndexConfig(**manifest["config"])
    except (ValidationError, TypeError) as exc:
        problems = (
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise CorruptIndexError(
            f"{path} holds an invalid embedding config ({problems}); restore it or rebuild"
        ) from None


def check_files(folder: Path, manifest: dict[str, Any], verify: bool) -> None:
    """Each file the manifest lists has its recorded size and (with ``verify``) SHA-256."""
    for name, expected in manifest["files"].items():
        path = folder / name
        size = path.stat().st_size  # FileNotFoundError propagates: the caller may retry on a newer version
        if size != int(expected["bytes"]):
            raise CorruptIndexError(
                f"{path} has {size} bytes but the manifest recorded {expected['bytes']}: the file is "
                + ("truncated" if size < int(expected["bytes"]) else "altered")
                + "; restore it or rebuild the index"
            )
        if verify and sha256_file(path) != expected["sha256"]:
            raise CorruptIndexError(
                f"{path} does not match the SHA-256 in its manifest: the file is corrupted; restore it or rebuild"
            )


def check_counts(folder: Path, manifest: dict[str, Any], found: dict[str, int], documents: int) -> None:
    """The counts the manifest records agree with what the files hold (``found``: what → node count)."""
    counts = manifest["counts"]
    problems = [f"{what}: {value}" for what, value in found.items() if value != counts["nodes"]]
    if documents != counts["documents"]:
        problems.append(f"documents: {documents}")
    if problems:
        raise CorruptIndexError(
            f"{folder} is inconsistent: the manifest counts {counts['nodes']} nodes in {counts['documents']} "
            f"documents, but found " + ", ".join(problems)
        )


def check_dimension(folder: Path, config: IndexConfig, index_dimension: int) -> None:
    if index_dimension != config.dimension:
        raise CorruptIndexError(
            f"{folder / MANIFEST_FILE} says the embedding has {config.dimension} dimensions but the vectors in "
            f"index.faiss have {index_dimension}: the manifest does not belong to this index; restore it or rebuild"
        )


def verify_version(folder: Path) -> str:
    """Check a version's manifest against its seal and every file's hash (no ``CURRENT`` to check against);
    returns the manifest's SHA-256. Used to recover a version when ``CURRENT`` is gone."""
    manifest = read_manifest(folder / MANIFEST_FILE, None)
    check_files(folder, manifest, verify=True)
    manifest_config(manifest, folder / MANIFEST_FILE)
    return sha256_file(folder / MANIFEST_FILE)
