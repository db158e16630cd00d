"""Checks and measurements of the texts handed to the embedding, before any forward pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_texts(texts: Sequence[str]) -> None:
    """One clear ``TypeError`` for input that is not a list of strings (a bare string would embed its letters)."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] must be a string, got {type(text).__name__}: {text!r:.80}")


def count_truncated(encoded: Any, max_length: int) -> int:
    """How many texts lost tokens to truncation (fast tokenizers report the overflow exactly)."""
    encodings = getattr(encoded, "encodings", None)
    if encodings:
        return sum(1 for encoding in encodings if encoding.overflowing)
    return sum(1 for ids in encoded["input_ids"] if len(ids) >= max_length)
