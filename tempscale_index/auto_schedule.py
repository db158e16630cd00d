"""The "auto" document temperature of ``TempScaleEmbedding``: decided once, from the first documents embedded.

A mixin, so the embedding module keeps to embedding: this holds the state machine (pending → decided by the
selector, or adopted from an index's record) and the lock that makes the decision happen exactly once across
threads. The decision itself is :func:`tempscale_index.selection.select_document_schedule`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llama_index.core.schema import BaseNode

from tempscale_index.index_config import PENDING_AUTO, IndexConfig
from tempscale_index.node_metadata import embedded_text
from tempscale_index.schedules import ScheduleLike, as_schedule, refuse_untrusted

if TYPE_CHECKING:
    from tempscale_index.selection import Selection

AUTO = "auto"  # document τ chosen once from the first documents embedded (tempscale_index.selection)
_RESOLVE_LOCK = threading.Lock()  # one for all instances (decisions are rare), so embeddings stay picklable


class AutoDocumentSchedule:
    """Methods of an embedding whose ``document_temperature`` may be ``"auto"`` (private attributes
    ``_selection`` and ``_auto_resolved`` are declared on the pydantic model that mixes this in)."""

    @property
    def auto_pending(self) -> bool:
        """True while document_temperature is 'auto' and no documents have decided it yet."""
        return self.document_temperature == AUTO

    @property
    def auto_resolved(self) -> bool:
        """True once an 'auto' document temperature was decided (by the selector or adopted from an index)."""
        return self._auto_resolved

    @property
    def selection(self) -> Selection | None:
        """What the selector chose and why; None for an explicit τ, a pending 'auto' or an adopted schedule."""
        return self._selection

    def calibrate(self, texts_or_nodes: Sequence[str] | Sequence[BaseNode]) -> Selection:
        """Decide the 'auto' document schedule now, from these chunks (or nodes, grouped by source document)."""
        if self._selection is not None:
            return self._selection
        if self.document_temperature != AUTO:
            raise ValueError(f"document_temperature is already {self.document_temperature.to_dict()}, not 'auto'")
        texts, groups = texts_and_groups(texts_or_nodes)
        if not texts:
            raise ValueError("calibrate needs a sample of the corpus's chunks, got none")
        self.resolve_document_schedule(texts, groups)
        assert self._selection is not None
        return self._selection

    def resolve_document_schedule(self, texts: Sequence[str], groups: Sequence[str] | None = None) -> None:
        """If 'auto' is still pending, choose the schedule from ``texts`` (exactly once, even across threads)."""
        if self.document_temperature != AUTO or not texts:  # no documents yet: nothing to decide from
            return
        from tempscale_index.selection import select_document_schedule

        with _RESOLVE_LOCK:
            if self.document_temperature == AUTO:
                selection = select_document_schedule(self, texts, groups)
                self._selection, self._auto_resolved = selection, True
                self.document_temperature = selection.schedule

    def match_index(
        self,
        config: IndexConfig,
        where: str = "this index",
        *,
        pending_ok: bool = False,
        trust_callable_schedules: bool = False,
    ) -> None:
        """Use an existing index as recorded: adopt its document schedule (an index never re-decides 'auto'),
        then refuse any other difference (``IndexConfigMismatchError``). ``pending_ok`` as in ``index_config``."""
        self.adopt_document_schedule(config.document_temperature, trust_callable_schedules)
        config.ensure_matches(self.index_config(pending_ok=pending_ok), where=where)  # type: ignore[attr-defined]

    def adopt_document_schedule(self, schedule: ScheduleLike, trust_callable_schedules: bool = False) -> None:
        """Take an existing index's recorded schedule instead of deciding again (a pending 'auto' only; a store
        whose own schedule is still pending, ``PENDING_AUTO``, leaves it pending). The schedule was read from
        disk: a callable one (it runs code) needs ``trust_callable_schedules``."""
        if schedule == PENDING_AUTO:
            return
        with _RESOLVE_LOCK:
            if self.document_temperature == AUTO:
                refuse_untrusted(schedule, "the index's document_temperature", trust_callable_schedules)
                self.document_temperature = as_schedule(schedule, "document_temperature")
                self._auto_resolved = True


def texts_and_groups(items: Sequence[str] | Sequence[BaseNode]) -> tuple[list[str], list[str] | None]:
    """Texts as they are embedded and, for nodes, the source document of each (the node itself if none)."""
    if all(isinstance(item, str) for item in items):
        return list(items), None
    nodes: Sequence[BaseNode] = items  # type: ignore[assignment]
    texts = [embedded_text(node) for node in nodes]
    return texts, [node.ref_doc_id or node.node_id for node in nodes]
