"""Metrics against values computed by hand and by pytrec_eval directly; span → chunk qrels; paired statistics."""

from __future__ import annotations

import math

import ir_measures
import numpy as np
import pytest
import pytrec_eval
from scipy import stats as scipy_stats

from tempscale_index.chunking import Chunk
from tempscale_index.evaluation import metrics
from tempscale_index.evaluation.metrics import chunk_qrels, doc_run_from_chunks, mean_scores, score_run
from tempscale_index.evaluation.stats import paired_comparison


def dcg(gains: list[float]) -> float:
    return sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))


def test_hand_computed_values_on_a_tiny_run():
    qrels = {"q1": {"d1": 1, "d2": 1, "d4": 0}, "q2": {"a": 2, "b": 1}}
    run = {
        "q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.1},  # relevant at ranks 2 and 4
        "q2": {"b": 0.5, "a": 0.4, "c": 0.3},  # graded: the less relevant one first
    }
    scores = score_run(run, qrels)
    q1, q2 = scores["q1"], scores["q2"]
    assert q1["nDCG@1"] == 0.0
    assert q1["nDCG@10"] == pytest.approx(dcg([0, 1, 0, 1]) / dcg([1, 1]))
    assert q1["RR@10"] == pytest.approx(1 / 2)
    assert q1["AP"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert q1["R@10"] == q1["R@100"] == 1.0
    # trec_eval's nDCG uses the relevance grade itself as the gain
    assert q2["nDCG@1"] == pytest.approx(1 / 2)
    assert q2["nDCG@10"] == pytest.approx(dcg([1, 2]) / dcg([2, 1]))
    assert q2["RR@10"] == 1.0
    assert mean_scores(scores)["RR@10"] == pytest.approx((1 / 2 + 1) / 2)


def test_cutoffs_unretrieved_and_unjudged_queries():
    qrels = {"q1": {"d11": 1}, "q2": {"d1": 1}, "q3": {"d1": 0}}
    run = {"q1": {f"d{i}": 1.0 - i / 100 for i in range(1, 20)}}  # d11 at rank 11; q2 not run at all
    scores = score_run(run, qrels)
    assert set(scores) == {"q1", "q2"}  # q3 has no relevant document: no metric is defined for it
    assert scores["q1"]["R@10"] == 0.0 and scores["q1"]["R@100"] == 1.0 and scores["q1"]["RR@10"] == 0.0
    assert scores["q1"]["AP"] == pytest.approx(1 / 11)
    assert scores["q2"] == dict.fromkeys(metrics.DEFAULT_MEASURES, 0.0)
    assert score_run({}, qrels)["q1"]["nDCG@10"] == 0.0


def test_agrees_with_pytrec_eval_on_random_runs():
    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(60)]
    qrels = {f"q{q}": {doc: int(rng.integers(0, 3)) for doc in rng.choice(docs, 12, replace=False)} for q in range(25)}
    run = {query: {doc: float(rng.random()) for doc in rng.choice(docs, 50, replace=False)} for query in qrels}
    ours = score_run(run, qrels, ("nDCG@10", "AP", "R@100", "P@5"))
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map", "recall.100", "P.5"}).evaluate(run)
    judged = [query for query in qrels if any(rel > 0 for rel in qrels[query].values())]
    assert sorted(ours) == sorted(judged)
    for query in judged:
        assert ours[query]["nDCG@10"] == pytest.approx(reference[query]["ndcg_cut_10"])
        assert ours[query]["AP"] == pytest.approx(reference[query]["map"])
        assert ours[query]["R@100"] == pytest.approx(reference[query]["recall_100"])
        assert ours[query]["P@5"] == pytest.approx(reference[query]["P_5"])


def test_scores_come_from_ir_measures(monkeypatch):
    calls = []
    real = ir_measures.iter_calc

    def spy(measures, qrels, run):
        calls.append([str(measure) for measure in measures])
        return real(measures, qrels, run)

    monkeypatch.setattr(metrics.ir_measures, "iter_calc", spy)
    score_run({"q": {"d": 1.0}}, {"q": {"d": 1}}, ("nDCG@10", "RR@10"))
    assert calls == [["nDCG@10", "RR@10"]]
    with pytest.raises(ValueError, match="unknown measure 'notAMeasure@3'"):
        score_run({"q": {"d": 1.0}}, {"q": {"d": 1}}, ("notAMeasure@3",))


def test_chunk_qrels_use_half_open_overlap():
    chunks = [
        Chunk("c0", "doc", 0, 100, ""),
        Chunk("c1", "doc", 90, 200, ""),  # overlaps c0: both can touch a span
        Chunk("c2", "doc", 200, 300, ""),
        Chunk("x0", "other", 0, 150, ""),
    ]
    spans = {
        "q_edge": {"doc": [(100, 150)]},  # starts exactly where c0 ends: only c1
        "q_two": {"doc": [(95, 96), (299, 400)], "other": [(149, 150)]},
        "q_uncovered": {"doc": [(500, 600)]},
        "q_missing_doc": {"nowhere": [(0, 10)]},
    }
    assert chunk_qrels(chunks, spans) == {"q_edge": {"c1": 1}, "q_two": {"c0": 1, "c1": 1, "c2": 1, "x0": 1}}


def test_document_run_takes_each_documents_best_chunk():
    chunk_run = {"q": {"a#0": 0.2, "a#1": 0.9, "b#0": 0.5}, "empty": {}}
    doc_run = doc_run_from_chunks(chunk_run, {"a#0": "a", "a#1": "a", "b#0": "b"})
    assert doc_run == {"q": {"a": 0.9, "b": 0.5}, "empty": {}}


def per_query(values: np.ndarray, measure: str = "m") -> dict[str, dict[str, float]]:
    return {f"q{i}": {measure: float(value)} for i, value in enumerate(values)}


def test_paired_comparison_matches_textbook_statistics():
    rng = np.random.default_rng(3)
    a = rng.random(60)
    b = a + 0.03 + rng.normal(0, 0.1, 60)
    result = paired_comparison(per_query(a), per_query(b), "m", n_resamples=5000, seed=1)
    diff = b - a
    assert result.mean_diff == pytest.approx(diff.mean())
    assert result.relative_change == pytest.approx(diff.mean() / a.mean())
    half_width = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff))
    assert result.ci_low == pytest.approx(diff.mean() - half_width, abs=0.15 * half_width)
    assert result.ci_high == pytest.approx(diff.mean() + half_width, abs=0.15 * half_width)
    # with 60 roughly normal differences the randomization test and the paired t-test agree closely
    assert result.p_value == pytest.approx(scipy_stats.ttest_rel(b, a).pvalue, abs=0.02)
    assert paired_comparison(per_query(a), per_query(b), "m", n_resamples=5000, seed=1) == result


def test_paired_comparison_edge_cases():
    a = np.linspace(0.1, 0.9, 20)
    same = paired_comparison(per_query(a), per_query(a), "m")
    assert (same.mean_diff, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shifted = paired_comparison(per_query(a), per_query(a + 0.1), "m", n_resamples=2000)
    assert shifted.ci_low == pytest.approx(0.1) and shifted.ci_high == pytest.approx(0.1)
    assert shifted.p_value < 0.001 and shifted.significant()
    with pytest.raises(ValueError, match="same queries"):
        paired_comparison(per_query(a), per_query(a[:-1]), "m")
    with pytest.raises(KeyError, match="'other'"):
        paired_comparison(per_query(a), per_query(a), "other")
