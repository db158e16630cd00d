"""The validation harness: presentations (sizes × orders), lookup of cached vectors, the per-corpus record, the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tempscale_index.chunking import Chunk
from tempscale_index.embedding import EncodedTexts
from tempscale_index.evaluation.datasets import RetrievalDataset
from tempscale_index.evaluation.presentations import LookupEmbedding, Presentation, presentations, presented_chunks
from tempscale_index.evaluation.validation import choice_markdown, main, validate_corpus
from tempscale_index.schedules import ConstantSchedule, PiecewiseSchedule


def test_presentations_nest_sizes_with_the_same_documents_in_every_order():
    doc_ids = [f"d{i}" for i in range(20)]
    shown = list(presentations(doc_ids, (0.15, 0.4, 1.0), orders=5))
    assert [(p.fraction, p.order) for p in shown] == [(f, o) for f in (0.15, 0.4, 1.0) for o in range(5)]
    by_size = {f: [p for p in shown if p.fraction == f] for f in (0.15, 0.4, 1.0)}
    assert [len(group[0].doc_ids) for group in by_size.values()] == [3, 8, 20]
    assert set(by_size[0.15][0].doc_ids) < set(by_size[0.4][0].doc_ids) < set(doc_ids)
    assert all(p.doc_ids == group[0].doc_ids for group in by_size.values() for p in group)
    assert list(presentations(doc_ids)) == shown  # seeded: the same presentations every time


@pytest.mark.parametrize("fractions, orders", [((0.0,), 5), ((1.5,), 5), ((1.0,), 0), ((), 5)])
def test_presentations_refuse_impossible_sizes_and_orders(fractions, orders):
    with pytest.raises(ValueError, match="fractions in"):
        next(presentations(["a"], fractions, orders))


def test_presented_chunks_change_the_order_but_keep_each_documents_reading_order():
    chunks = [Chunk(f"{doc}-{n}", doc, 0, 1, f"{doc} part {n}") for doc in "abcdef" for n in range(3)]
    seen = []
    for order in range(5):
        texts, groups = presented_chunks(chunks, Presentation(1.0, order, tuple("abcdef")))
        assert sorted(texts) == sorted(chunk.text for chunk in chunks)
        assert all(text.startswith(group) for text, group in zip(texts, groups))
        for doc in "abcdef":
            assert [text for text in texts if text.startswith(doc)] == [f"{doc} part {n}" for n in range(3)]
        seen.append(tuple(texts))
    assert len(set(seen)) == 5  # five different orders of the same chunks


class _CountingEmbedding:
    """Stands in for the model: 2-dimensional vectors (τ, length) and a count of the texts it embedded."""

    dimension = 2

    def __init__(self) -> None:
        self.embedded: list[tuple[str, float]] = []

    def token_counts(self, texts, kind="document"):
        return [len(text.split()) for text in texts]

    def encode(self, texts, kind="document", temperature_override=None, show_progress=None):
        counts = self.token_counts(texts, kind)
        taus = temperature_override.taus(counts)
        self.embedded += list(zip(texts, taus))
        return EncodedTexts(np.array([[tau, count] for tau, count in zip(taus, counts)], np.float32), taus, counts)


def test_lookup_serves_known_vectors_at_the_tau_each_text_gets_and_embeds_the_rest_once():
    model = _CountingEmbedding()
    lookup = LookupEmbedding(model)  # type: ignore[arg-type]
    short, long = "a b", "word " * 200
    lookup.remember([short, long], 0.8, np.array([[9, 9], [8, 8]], np.float32))
    step = PiecewiseSchedule([128], [1.0, 0.8])
    first = lookup.encode([short, long], "document", step)
    assert first.taus == [1.0, 0.8]
    assert model.embedded == [(short, 1.0)]  # the long text gets 0.8 under the step: served, not embedded
    assert first.embeddings[1].tolist() == [8, 8]
    again = lookup.encode([long, short], "document", step)
    assert model.embedded == [(short, 1.0)]  # the short text at τ = 1 is remembered now
    assert again.embeddings.tolist() == [[8, 8], first.embeddings[0].tolist()]
    assert (lookup.served, lookup.embedded) == (3, 1)
    assert lookup.token_counts([short]) == [2]  # everything else is the model's


def test_lookup_is_exact_for_the_real_model(minilm):
    texts = ["The committee agreed on the budget for the remote control.", "word " * 150]
    lookup = LookupEmbedding(minilm)
    lookup.remember(texts, 0.8, minilm.encode(texts, "document", ConstantSchedule(0.8)).embeddings)
    step = PiecewiseSchedule([128], [1.0, 0.8])
    served = lookup.encode(texts, "document", step).embeddings
    direct = minilm.encode(texts, "document", step).embeddings
    np.testing.assert_allclose(served, direct, atol=1e-5)


def _tiny_corpus(n_documents: int) -> RetrievalDataset:
    topics = ["budget", "remote control design", "marketing", "battery", "user interface", "materials", "price"]
    corpus = {
        f"m{i}": f"Meeting {i} discussed the {topics[i % len(topics)]}. " + "They agreed to meet again. " * 3
        for i in range(n_documents)
    }
    queries = {f"q{i}": f"what did meeting {i} say about the {topics[i % len(topics)]}" for i in range(n_documents)}
    return RetrievalDataset("tiny", corpus, queries, {f"q{i}": {f"m{i}": 1} for i in range(n_documents)})


def test_validate_corpus_records_every_presentation_and_scores_every_choice(minilm, tmp_path):
    result = validate_corpus(
        minilm, _tiny_corpus(6), ["document"], [1.0, 0.8], tmp_path / "cache", fractions=(0.5, 1.0), orders=2
    )
    runs = result["presentations"]
    assert [(run["fraction"], run["order"], run["n_documents"]) for run in runs] == [
        (0.5, 0, 3),
        (0.5, 1, 3),
        (1.0, 0, 6),
        (1.0, 1, 6),
    ]
    assert all(run["label"] in result["levels"]["document"]["documents"] for run in runs)
    assert result["selection"] == runs[2]["selection"]  # the full corpus in its own order is "auto"
    half = result["sizes"]["0.5"]["document"]
    assert half["n_queries"] == 3 and set(half["documents"]) == set(result["levels"]["document"]["documents"])
    assert result["lookup"]["embedded"] == 0  # every size was scored from the full corpus's vectors
    (tmp_path / "out" / "model").mkdir(parents=True)
    (tmp_path / "out" / "model" / "tiny.json").write_text(json.dumps(result))
    table = choice_markdown(tmp_path / "out").splitlines()
    assert len(table) == 2 + 2  # header, rule, one row per size
    # fewer than 8 documents: τ = 1 in every order, and the selector says it is pending
    for row, size in zip(table[2:], ("50% \\| 3 \\| 3", "100% \\| 6 \\| 6")):  # documents, and queries on them
        assert re.match(rf"\| model \| tiny \| document \| {size} \| 1\.0 \(pending\) ×2 \| yes \| ", row)
    assert table[2].endswith("| yes |")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("qmsum", "expected NAME=PATH:LEVEL"),
        ("q=runs/x:paragraph", "levels document/chunk"),
        ("q=runs/x:chunk:ten", "whole number"),
    ],
)
def test_cli_bad_corpus_spec_is_one_error_line(spec, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--corpus", spec])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and "Traceback" not in error


def test_cli_bad_fraction_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--corpus", "q=runs/x:chunk", "--fraction", "0"])
    assert "fractions in (0, 1]" in capsys.readouterr().err
