"""The unsupervised document-τ selector on real text with the bundled MiniLM.

QMSum meeting transcripts are long, homogeneous texts whose embeddings collapse with length (docs/results.md:
τ = 0.8 gains 2–5% there); the standard library's docstrings are short, distinct texts on which every τ < 1 loses.
The selector must tell them apart from the text alone, and say τ = 1 when it has too little to go on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tempscale_index.evaluation import load_qmsum
from tempscale_index.evaluation.embedded import chunk_dataset
from tempscale_index.evaluation.package_docs import load_package_docs
from tempscale_index.schedules import ConstantSchedule, PiecewiseSchedule
from tempscale_index.selection import CANDIDATE_TAU, SHORT_TOKENS, Selection, select_document_schedule

# The ten shortest QMSum test meetings, shipped with the tests: the selector needs 8+ source documents to trust
# its interval. On them it chose τ = 0.8 above 128 tokens for seeds 0, 1 and 2 (lower bounds +0.027, +0.019, +0.003).
MEETING_FOLDERS = (
    Path(__file__).parent / "fixtures" / "qmsum" / "test",
    Path(__file__).parent / "fixtures" / "qmsum" / "extra",
)


@pytest.fixture(scope="module")
def meeting_chunks(minilm):
    chunks = [
        chunk for folder in MEETING_FOLDERS for chunk in chunk_dataset(load_qmsum(folder, queries="questions"), minilm)
    ]
    return [chunk.text for chunk in chunks], [chunk.doc_id for chunk in chunks]


@pytest.fixture(scope="module")
def docstrings():
    corpus = load_package_docs(include_stdlib=True).corpus
    return [corpus[doc_id] for doc_id in sorted(corpus) if doc_id.startswith("stdlib")]


def test_meetings_that_collapse_get_a_lower_tau_for_long_chunks(meeting_chunks, minilm):
    texts, groups = meeting_chunks
    selection = select_document_schedule(minilm, texts, groups)
    assert selection.schedule == PiecewiseSchedule([SHORT_TOKENS], [1.0, CANDIDATE_TAU])
    assert selection.evidence["gain_interval"][0] > 0
    assert selection.evidence["n_documents"] >= 8


def test_distinct_short_docstrings_keep_tau_one(docstrings, minilm):
    assert len(docstrings) >= 100
    selection = select_document_schedule(minilm, docstrings)
    assert selection.schedule == ConstantSchedule(1.0)
    assert selection.evidence["gain_interval"][0] <= 0
    assert selection.evidence["n_sampled"] >= 24


def test_same_corpus_same_choice_and_evidence(docstrings, minilm):
    first = select_document_schedule(minilm, docstrings[:60], seed=5)
    second = select_document_schedule(minilm, list(docstrings[:60]), seed=5)
    assert first.to_dict() == second.to_dict()
    assert isinstance(first, Selection) and first.reason


def test_too_small_a_sample_says_tau_one_without_embedding(meeting_chunks, minilm):
    texts, groups = meeting_chunks
    few = select_document_schedule(minilm, texts[:10], groups[:10])
    assert few.schedule == ConstantSchedule(1.0)
    assert "too few" in few.reason and "gain" not in few.evidence


def test_one_source_document_is_too_little_evidence(meeting_chunks, minilm):
    texts, _ = meeting_chunks
    single = select_document_schedule(minilm, texts[:200], ["one meeting"] * 200)
    assert single.schedule == ConstantSchedule(1.0)
    assert single.evidence["n_documents"] == 1


def test_groups_must_match_texts(minilm):
    with pytest.raises(ValueError, match="one document per text"):
        select_document_schedule(minilm, ["a text"] * 3, ["doc"] * 2)
