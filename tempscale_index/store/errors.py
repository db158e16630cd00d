"""Errors a FAISS store raises, each with one line that tells the user what to do."""

from __future__ import annotations


class StoreError(RuntimeError):
    """Base class: the index directory cannot be used as asked."""


class IndexNotFoundError(StoreError, FileNotFoundError):
    """No committed index at the given directory."""


class IndexExistsError(StoreError, FileExistsError):
    """An index already exists where a new one was to be created."""


class CorruptIndexError(StoreError):
    """A committed file is truncated, altered or unreadable: the index cannot be trusted."""


class IndexLockedError(StoreError):
    """Another process holds the writer lock."""
