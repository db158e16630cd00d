"""Supervised and unsupervised calibration on real QMSum meetings with the bundled MiniLM."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tempscale_index.cli import app
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation import load_qmsum
from tempscale_index.evaluation.calibration import (
    calibrate_supervised,
    calibrate_unsupervised,
    document_candidates,
    split_queries,
)
from tempscale_index.evaluation.embedded import EmbeddedEvaluator
from tempscale_index.schedules import ConstantSchedule, LogLinearSchedule, Schedule


@pytest.fixture(scope="module")
def summaries(small_qmsum_dir):
    return load_qmsum(small_qmsum_dir, queries="summaries")


def test_split_is_a_deterministic_partition_of_the_judged_queries(summaries):
    dev, test = split_queries(summaries, dev_fraction=0.4, seed=7)
    assert set(dev.queries).isdisjoint(test.queries)
    assert set(dev.queries) | set(test.queries) == set(summaries.judged_query_ids)
    assert len(dev.queries) == round(0.4 * len(summaries.judged_query_ids))
    again, _ = split_queries(summaries, dev_fraction=0.4, seed=7)
    assert list(again.queries) == list(dev.queries)
    assert dev.corpus is summaries.corpus
    with pytest.raises(ValueError, match="dev_fraction"):
        split_queries(summaries, dev_fraction=1.0)


def test_supervised_choice_is_the_best_cell_only_when_it_significantly_beats_tau_one(summaries, minilm):
    evaluator = EmbeddedEvaluator(summaries, minilm)
    documents = {"1.0": ConstantSchedule(1.0), "0.8": ConstantSchedule(0.8)}
    queries = {"1.0": ConstantSchedule(1.0), "0.8": ConstantSchedule(0.8)}
    calibration, sweep = calibrate_supervised(evaluator, documents, queries, alpha=0.05)
    evidence = calibration.evidence
    best = (evidence["best_cell"]["document"], evidence["best_cell"]["query"])
    assert best == sweep.best("nDCG@10")
    comparison = sweep.compare(("1.0", "1.0"))[best]
    significant = comparison.mean_diff > 0 and comparison.p_value < 0.05
    expected = best if significant else ("1.0", "1.0")
    assert (calibration.document_temperature, calibration.query_temperature) == (
        documents[expected[0]],
        queries[expected[1]],
    )
    # With alpha = 1 any improvement that is not pure noise (p < 1) counts, so the choice is the best cell.
    loose, _ = calibrate_supervised(evaluator, documents, queries, alpha=1.0)
    if comparison.mean_diff > 0 and comparison.p_value < 1.0:
        assert (loose.document_temperature, loose.query_temperature) == (documents[best[0]], queries[best[1]])


def test_config_file_is_what_the_embedding_accepts(summaries, minilm, tmp_path):
    evaluator = EmbeddedEvaluator(summaries, minilm)
    documents = {"1.0": ConstantSchedule(1.0), "loglinear": LogLinearSchedule(64, 1.0, 256, 0.85)}
    calibration, _ = calibrate_supervised(evaluator, documents, {"1.0": ConstantSchedule(1.0)}, alpha=1.0)
    config = json.loads(calibration.save_config(tmp_path / "tempscale-config.json").read_text())
    assert set(config) == {"document_temperature", "query_temperature"}
    embedding = TempScaleEmbedding(**config)
    assert embedding.document_temperature == calibration.document_temperature
    assert Schedule.from_dict(config["query_temperature"]) == ConstantSchedule(1.0)


def test_candidates_must_include_the_baseline(summaries, minilm):
    evaluator = EmbeddedEvaluator(summaries, minilm)
    with pytest.raises(ValueError, match="baseline"):
        calibrate_supervised(evaluator, {"0.8": ConstantSchedule(0.8)}, {"1.0": ConstantSchedule(1.0)})
    assert document_candidates()["1.0"] == ConstantSchedule(1.0)
    assert all(s.is_non_increasing() for s in document_candidates().values())


def test_unsupervised_calibration_uses_the_selector_and_keeps_the_query_schedule(summaries, minilm):
    calibration = calibrate_unsupervised(minilm, summaries, seed=0)
    assert calibration.query_temperature is minilm.query_temperature
    assert calibration.method.startswith("unsupervised")
    # three meetings are too few source documents for the selector's interval: it must keep τ = 1
    assert calibration.document_temperature == ConstantSchedule(1.0)
    assert calibration.evidence["n_documents"] == 3 and "too few" in calibration.evidence["reason"]


def test_calibrate_command_writes_config_and_report(small_qmsum_dir, tmp_path, minilm):
    output = tmp_path / "cal"
    result = CliRunner().invoke(app, ["calibrate", str(small_qmsum_dir), "-o", str(output), "--dev-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    config = json.loads((output / "tempscale-config.json").read_text())
    TempScaleEmbedding(**config)  # accepted as is
    saved = json.loads((output / "calibration.json").read_text())
    assert saved["method"] == "supervised" and saved["config"] == config
    assert (output / "sweep-dev.png").stat().st_size > 0
    assert "Reproduce with" in (output / "calibration.md").read_text()
