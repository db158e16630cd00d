"""Refuse vectors that would break search before they reach an index: NaN or ∞ values poison FAISS's scores, and
a vector far from unit norm (where the embedding normalizes) wins or loses every inner-product query. Shared by
the FAISS store and the vector-database connectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NORM_TOLERANCE = 1e-2  # normalised float32 (and int8 ONNX) embeddings are within 1e-5 of 1


class InvalidVectorError(ValueError):
    """A vector is not finite, or not unit-norm where the embedding normalises: it was not added."""


def check_vectors(vectors: np.ndarray, normalized: bool, where: str, ids: Sequence[str] | None = None) -> None:
    """Raise ``InvalidVectorError`` (one line naming the first bad row) unless every row of ``vectors`` is finite
    and, with ``normalized``, of norm 1 ± ``NORM_TOLERANCE``."""
    vectors = np.asarray(vectors, dtype=np.float32)

    def row_name(row: int) -> str:
        return f"node {ids[row]}" if ids is not None else f"vector {row}"

    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidVectorError(f"{row_name(row)} has NaN or infinite values; refused, {where} is unchanged")
    if normalized:
        norms = np.linalg.norm(vectors, axis=1)
        far = np.abs(norms - 1.0) > NORM_TOLERANCE
        if far.any():
            row = int(np.argmax(far))
            raise InvalidVectorError(
                f"{row_name(row)} has norm {norms[row]:.4g}, not 1 as the embedding's normalised vectors have "
                f"(it would skew every inner-product score); refused, {where} is unchanged"
            )
