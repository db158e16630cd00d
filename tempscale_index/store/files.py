"""Small file-system helpers for atomic commits: fsync, hashing while writing, crash points for tests."""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from pathlib import Path
from typing import BinaryIO

CRASH_POINT_ENV = "TEMPSCALE_INDEX_CRASH_POINT"
_BLOCK = 1 << 20


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``$TEMPSCALE_INDEX_CRASH_POINT`` names this point (fault injection
    for the crash-safety tests; a no-op otherwise)."""
    if os.environ.get(CRASH_POINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_path(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # some platforms cannot open directories; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks (files may be larger than memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class HashingWriter:
    """A binary file writer that keeps the SHA-256 and size of what it wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._handle.write(data)
        self._digest.update(data)
        self.size += len(data)
        return len(data)

    def close(self) -> dict[str, int | str]:
        """Flush, fsync and close; returns the file's ``{"bytes", "sha256"}`` entry for the manifest."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        return {"bytes": self.size, "sha256": self._digest.hexdigest()}

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._handle.closed:
            self._handle.close()


def write_atomic_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically and durably (fsynced): a reader sees the old content or the new,
    never a mix, and a crash leaves one of them. Each call writes its own temporary file, so threads and
    processes writing the same path never collide."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
