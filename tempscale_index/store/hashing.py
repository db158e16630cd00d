"""The content hash that decides whether a document changed; the pipeline and the batch job share it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence


def content_hash(doc_id: str, texts: Sequence[str]) -> str:
    """What makes a document unchanged: its id and its text (parts in order). Metadata such as file dates is
    not content, so touching a file does not re-embed it."""
    return hashlib.sha256(json.dumps([doc_id, *texts], ensure_ascii=False).encode("utf-8")).hexdigest()
