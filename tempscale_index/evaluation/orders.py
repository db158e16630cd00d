"""The same corpus in other orders, to check that ``auto`` gives one answer per corpus (issue 14).

Order ``k`` permutes the documents (seeded by ``k``); odd orders also interleave the documents' chunks round-robin.
Each document's own chunks keep their reading order, as every entry point delivers them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def reordered(texts: Sequence[str], groups: Sequence[str], order: int) -> tuple[list[str], list[str]]:
    """``texts`` and their ``groups`` (document ids) in order number ``order``."""
    by_doc: dict[str, list[str]] = {}
    for text, group in zip(texts, groups):
        by_doc.setdefault(group, []).append(text)
    names = sorted(by_doc)
    random.Random(order).shuffle(names)
    if order % 2 == 0:
        pairs = [(text, name) for name in names for text in by_doc[name]]
    else:
        queues = {name: list(by_doc[name]) for name in names}
        pairs = []
        while any(queues.values()):
            for name in names:
                if queues[name]:
                    pairs.append((queues[name].pop(0), name))
    return [text for text, _ in pairs], [name for _, name in pairs]
