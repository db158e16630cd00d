"""Committed versions of an index directory: the writer lock, the ``CURRENT`` pointer, ordering, publishing,
garbage collection, recovery when ``CURRENT`` is lost, and quarantine.

``CURRENT`` holds one line, ``v-000004 <SHA-256 of that version's manifest.json>``, replaced atomically. A
version folder is written whole under ``versions/.tmp-*``, fsynced, renamed into place, and only then named by
``CURRENT``: that replace is the commit. Versions are ordered by their number, never by folder name (the
zero-padded width overflows past 999,999 commits). Each version also seals its own manifest (``manifest.py``), so
a one-word ``CURRENT`` of an older release, or a lost one, never lets an edited manifest through. A version folder
is never deleted except by garbage collection of old versions: one a writer cannot use (newer than ``CURRENT``, or
failing verification) is moved to ``quarantine/`` for inspection, and its number is never used again.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from tempscale_index.store.errors import (
    CorruptIndexError,
    IndexExistsError,
    IndexLockedError,
    IndexNotFoundError,
    StoreError,
)
from tempscale_index.store.files import crash_point, fsync_path, write_atomic_text
from tempscale_index.store.manifest import verify_version

logger = logging.getLogger(__name__)

CURRENT, VERSIONS, LOCK, QUARANTINE = "CURRENT", "versions", "writer.lock", "quarantine"
KEEP_VERSIONS = 2  # the current version and the one before it, for readers still loading it
_VERSION_NAME = re.compile(r"v-(\d+)")
_QUARANTINED_NAME = re.compile(r"v-(\d+)(?:-[0-9a-f]+)?")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Pointer:
    """What ``CURRENT`` says: the committed version and its manifest's SHA-256 (None: an older format, whose
    version is then trusted only through its own seal)."""

    name: str
    manifest_sha256: str | None
    recovered: bool = False  # CURRENT was missing; this is the newest complete version found instead

    @property
    def number(self) -> int:
        return version_number(self.name)


def version_name(number: int) -> str:
    return f"v-{number:06d}"


def version_number(name: str) -> int:
    match = _VERSION_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a version name")
    return int(match.group(1))


def committed_versions(root: Path) -> list[Path]:
    """Version folders renamed into place (complete or not), oldest first by number."""
    folders = root / VERSIONS
    if not folders.is_dir():
        return []
    found = [path for path in folders.iterdir() if _VERSION_NAME.fullmatch(path.name) and path.is_dir()]
    return sorted(found, key=lambda path: version_number(path.name))


def has_versions(root: Path) -> bool:
    """Whether ``root`` holds an index: a ``CURRENT`` file, or committed versions whose pointer was lost."""
    return (root / CURRENT).is_file() or bool(committed_versions(root))


def latest_name(root: Path) -> str | None:
    """A cheap look at which version is newest (``CURRENT``'s name, else the newest folder), to notice commits."""
    try:
        return (root / CURRENT).read_text(encoding="utf-8").split()[0]
    except (FileNotFoundError, IndexError):
        folders = committed_versions(root)
        return folders[-1].name if folders else None


def pointer_text(root: Path) -> str | None:
    """``CURRENT``'s content, else the newest folder's name: what changes when anything is committed."""
    try:
        return (root / CURRENT).read_text(encoding="utf-8")
    except FileNotFoundError:
        return latest_name(root)


def read_pointer(root: Path) -> Pointer:
    """The committed version: ``CURRENT``'s, or (when it is missing) the newest one that verifies completely."""
    try:
        text = (root / CURRENT).read_text(encoding="utf-8")
    except FileNotFoundError:
        if committed_versions(root):
            return recover_pointer(root)
        raise IndexNotFoundError(f"no index at {root} (no {CURRENT} file)") from None
    name, _, checksum = text.strip().partition(" ")
    checksum = checksum.strip() or None
    if not _VERSION_NAME.fullmatch(name) or not (root / VERSIONS / name).is_dir():
        raise CorruptIndexError(f"{root / CURRENT} names version {name!r}, which is not in {root / VERSIONS}")
    if checksum is not None and not _SHA256.fullmatch(checksum):
        raise CorruptIndexError(f"{root / CURRENT} is corrupted: {checksum!r} is not a SHA-256")
    return Pointer(name, checksum)


def recover_pointer(root: Path) -> Pointer:
    """``CURRENT`` is gone but versions are there: the newest whose manifest and files all verify. Never
    treat such a directory as empty (creating over it would throw the committed index away)."""
    skipped = []
    for folder in reversed(committed_versions(root)):
        try:
            checksum = verify_version(folder)
        except (OSError, StoreError) as exc:
            skipped.append(f"{folder.name} ({exc})")
            continue
        logger.warning(
            "%s is missing: recovered the newest complete, verified version %s%s",
            root / CURRENT,
            folder,
            f" (skipped unverifiable {'; '.join(skipped)})" if skipped else "",
        )
        return Pointer(folder.name, checksum, recovered=True)
    raise CorruptIndexError(
        f"{root / CURRENT} is missing and no version under {root / VERSIONS} verifies: {'; '.join(skipped)}; "
        "restore the index from a backup or rebuild it in a new directory"
    )


def lost_pointer_note(root: Path) -> str:
    """For refusing to create over versions whose ``CURRENT`` is gone: name the newest, say how to recover."""
    if (root / CURRENT).is_file():
        return ""
    newest = committed_versions(root)[-1].name
    return (
        f" (its {CURRENT} file is missing but committed version {newest} is there: open the index, "
        "e.g. with `tempscale-index info`, to recover it instead of creating a new one over it)"
    )


def ensure_creatable(root: Path) -> None:
    """A new index goes into a new or empty directory (leftovers of a writer that never committed aside)."""
    if not root.is_dir():
        if root.exists():
            raise IndexExistsError(f"{root} is a file, not a directory")
        return
    foreign = sorted(
        path.name
        for path in root.iterdir()
        if path.name not in (LOCK, VERSIONS) and not path.name.startswith(("staging-", f".{CURRENT}."))
    )
    if foreign:
        raise IndexExistsError(f"{root} is not empty ({foreign[0]}…) and holds no index; give a new or empty directory")


def write_pointer(root: Path, name: str, manifest_sha256: str) -> None:
    write_atomic_text(root / CURRENT, f"{name} {manifest_sha256}\n")


def acquire_lock(root: Path, timeout: float) -> FileLock:
    """Take the writer lock (creating ``root``), or raise ``IndexLockedError`` after ``timeout`` seconds.

    A writer removes ``writer.lock`` when it closes (:func:`release_lock`); a process that was waiting on the
    removed file holds a lock nobody else can see, so it checks that it locked the file now at that path and
    otherwise tries again."""
    root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        lock = FileLock(str(root / LOCK), timeout=max(0.0, deadline - time.monotonic()))
        try:
            lock.acquire()
        except Timeout:
            raise IndexLockedError(
                f"another process is writing to {root} (it holds {LOCK}); wait for it to finish"
            ) from None
        if _holds_lock_file(lock, root / LOCK):
            return lock
        lock.release()


def _holds_lock_file(lock: FileLock, path: Path) -> bool:
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if fd is None:  # another filelock layout: trust the lock (the file is then never removed, see release_lock)
        return True
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def release_lock(root: Path, lock: FileLock) -> None:
    """Remove ``writer.lock`` (still holding it, so no one else can hold that file), then release it."""
    if getattr(getattr(lock, "_context", None), "lock_file_fd", None) is not None:
        (root / LOCK).unlink(missing_ok=True)
    lock.release()


def new_version_folder(root: Path, name: str) -> Path:
    """An empty folder to write version ``name`` in before it is published."""
    versions = root / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    folder = versions / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def publish(root: Path, folder: Path, name: str, manifest_sha256: str) -> Path:
    """Commit a fully written version folder: fsync, rename into place, then replace ``CURRENT``."""
    fsync_path(folder)
    crash_point("commit:version-written")
    final = root / VERSIONS / name
    os.rename(folder, final)
    fsync_path(root / VERSIONS)
    crash_point("commit:version-renamed")
    write_pointer(root, name, manifest_sha256)
    crash_point("commit:current-replaced")
    return final


def remove_orphans(root: Path, current: int) -> None:
    """Clear what a crashed writer left (the caller holds the lock): unfinished ``.tmp-*`` folders are removed;
    versions newer than ``current`` (renamed into place but never named by ``CURRENT``, or named once and failing
    verification now) are quarantined, never deleted."""
    versions = root / VERSIONS
    if not versions.is_dir():
        return
    for leftover in versions.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for folder in committed_versions(root):
        if version_number(folder.name) > current:
            quarantine(root, folder, f"it is newer than the version in use, {version_name(current)}")


def quarantine(root: Path, folder: Path, reason: str) -> Path:
    """Move a version folder to ``quarantine/`` (one log line) instead of deleting evidence."""
    target_dir = root / QUARANTINE
    target_dir.mkdir(exist_ok=True)
    target = target_dir / folder.name
    if target.exists():
        target = target_dir / f"{folder.name}-{uuid.uuid4().hex[:8]}"
    os.rename(folder, target)
    fsync_path(target_dir)
    fsync_path(folder.parent)
    logger.warning("moved %s to %s (%s); its number is never reused", folder, target, reason)
    return target


def next_number(root: Path, current: int) -> int:
    """The number of the next commit: above ``current`` and above every version ever placed or quarantined."""
    names = [path.name for path in committed_versions(root)]
    if (root / QUARANTINE).is_dir():
        names += [path.name for path in (root / QUARANTINE).iterdir()]
    used = [int(match.group(1)) for name in names if (match := _QUARANTINED_NAME.fullmatch(name))]
    return max([current, *used]) + 1


def collect_garbage(root: Path, keep: int = KEEP_VERSIONS) -> None:
    """Remove all but the newest ``keep`` versions."""
    for old in committed_versions(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def remove_unused(root: Path, created_root: bool) -> None:
    """Undo what a create that never committed made: the lock file, an empty versions folder, and ``root``
    itself if this create made it and nothing else is left (the caller still holds the lock)."""
    (root / LOCK).unlink(missing_ok=True)
    for folder in (root / VERSIONS, root) if created_root else (root / VERSIONS,):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty: something else lives there
            return
