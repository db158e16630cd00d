"""The "auto" document temperature of ``TempScaleEmbedding``: decided once, from enough documents.

A mixin, so the embedding module keeps to embedding: this holds the state machine (pending → decided by the
selector, adopted from an index's record, or settled at τ = 1 by an index whose whole corpus was too little) and
the lock that makes the decision happen exactly once across threads. The decision itself is
:func:`tempscale_index.selection.select_document_schedule`.

Too little evidence is never an answer: a call whose texts carry no document ids (``get_text_embedding``, text
batches) cannot count documents, and one with too few texts or documents leaves the selector pending. Such texts
are embedded *provisionally* at τ = 1 (a warning says so once, and nodes record the τ they got); the first call
with nodes of enough documents, or ``calibrate``, decides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llama_index.core.schema import BaseNode

from tempscale_index.index_config import PENDING_AUTO, IndexConfig
from tempscale_index.node_metadata import embedded_text
from tempscale_index.schedules import ConstantSchedule, Schedule, ScheduleLike, as_schedule, refuse_untrusted

if TYPE_CHECKING:
    from tempscale_index.selection import Selection

logger = logging.getLogger(__name__)
AUTO = "auto"  # document τ chosen once, from enough documents (tempscale_index.selection)
PROVISIONAL = ConstantSchedule(1.0)  # what texts embedded while 'auto' is pending get
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
        """What the selector said and why (while pending, its latest 'too few' answer); None for an explicit τ,
        an adopted schedule, or before any attempt."""
        return self._selection

    def calibrate(self, texts_or_nodes: Sequence[str] | Sequence[BaseNode]) -> Selection:
        """Decide the 'auto' document schedule now, from these nodes (grouped by source document) or texts (each
        a whole document). With too few texts or documents it returns a pending Selection; 'auto' stays pending."""
        if self.document_temperature != AUTO:
            if self._selection is not None:  # decided (or settled) already: no second decision
                return self._selection
            raise ValueError(f"document_temperature is already {self.document_temperature.to_dict()}, not 'auto'")
        texts, groups = texts_and_groups(texts_or_nodes)
        if not texts:
            raise ValueError("calibrate needs a sample of the corpus's chunks, got none")
        if groups is None:  # asked explicitly: each text is a whole document (embedding calls never assume it)
            from tempscale_index.selection_sample import document_groups

            groups = document_groups(texts, None)
        self.resolve_document_schedule(texts, groups)
        assert self._selection is not None
        return self._selection

    def resolve_document_schedule(self, texts: Sequence[str], groups: Sequence[str] | None = None) -> None:
        """If 'auto' is still pending, choose the schedule from ``texts`` (exactly once, even across threads);
        without ``groups`` the documents cannot be counted, so it stays pending."""
        if self.document_temperature != AUTO or not texts or groups is None:
            return
        from tempscale_index.selection import select_document_schedule

        with _RESOLVE_LOCK:
            if self.document_temperature == AUTO:
                selection = select_document_schedule(self, texts, groups)
                self._selection = selection
                if not selection.pending:
                    self._auto_resolved = True
                    self.document_temperature = selection.schedule

    def document_schedule_now(self, count: int) -> Schedule:
        """The schedule documents are embedded with now: the decided one, or τ = 1 provisionally while 'auto'
        is pending (warned once per embedding, with how many texts got it)."""
        if self.document_temperature != AUTO:
            return self.document_temperature
        if not self._warned_pending:
            self._warned_pending = True
            why = self._selection.reason if self._selection is not None else "no document ids to count documents by"
            logger.warning(
                "document_temperature='auto' is pending (%s): %d text(s) embedded at τ = 1 provisionally; "
                "embed nodes of 8+ documents, or call calibrate(nodes), to decide (warned once)",
                why,
                count,
            )
        return PROVISIONAL

    def settle_pending(self) -> None:
        """For an index whose whole corpus (or its first few thousand chunks) was too little to decide: record
        τ = 1 for it, saying why, instead of leaving the index without a schedule."""
        from tempscale_index.selection import Selection

        with _RESOLVE_LOCK:
            if self.document_temperature != AUTO:
                return
            before = self._selection
            reason = "τ = 1 for this index: " + (before.reason if before is not None else "no document ids")
            evidence = {**(before.evidence if before is not None else {}), "settled": "too few to decide"}
            self._selection = Selection(PROVISIONAL, reason, evidence)
            self._auto_resolved = True
            self.document_temperature = PROVISIONAL
            logger.info("document τ: %s", reason)  # recorded in the manifest and shown by `info`

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
