"""Embedded evaluation and τ sweeps on real QMSum meetings with the bundled MiniLM."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tempscale_index.cli import app
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation import load_qmsum, score_run
from tempscale_index.evaluation.chunk_tables import chunk_dataset
from tempscale_index.evaluation.embedded import EmbeddedEvaluator
from tempscale_index.evaluation.sweep import plot_heatmap, run_sweep, sweep_markdown
from tempscale_index.schedules import ConstantSchedule, LogLinearSchedule, PiecewiseSchedule


@pytest.fixture(scope="module")
def questions(small_qmsum_dir):
    return load_qmsum(small_qmsum_dir, queries="questions")


@pytest.fixture(scope="module")
def evaluator(questions, minilm):
    return EmbeddedEvaluator(questions, minilm)


class CountingEncoder:
    """Wraps ``encode`` to count how many texts of each kind really reach the model."""

    def __init__(self, monkeypatch):
        self.texts = {"document": 0, "query": 0}
        original = TempScaleEmbedding.encode

        def encode(embedding, texts, kind="document", **kwargs):
            self.texts[kind] += len(texts)
            return original(embedding, texts, kind, **kwargs)

        monkeypatch.setattr(TempScaleEmbedding, "encode", encode)


def test_chunks_carry_exact_character_offsets(questions, evaluator, minilm):
    for chunk in evaluator.chunks:
        assert questions.corpus[chunk.doc_id][chunk.start : chunk.end] == chunk.text
    assert max(evaluator.chunk_token_counts()) <= minilm.max_length
    assert {chunk.doc_id for chunk in evaluator.chunks} == set(questions.corpus)


def test_tau_one_matches_an_independent_sentence_transformers_search(questions, evaluator, minilm):
    """Document level = best chunk per document, scored by pytrec_eval: recomputed here without the evaluator."""
    model = minilm.sentence_transformer
    chunk_vectors = model.encode([c.text for c in evaluator.chunks], normalize_embeddings=True)
    query_ids = list(questions.queries)
    query_vectors = model.encode([questions.queries[q] for q in query_ids], normalize_embeddings=True)
    similarities = query_vectors @ chunk_vectors.T
    run = {}
    for row, query_id in zip(similarities, query_ids):
        best = {}
        for score, chunk in zip(row, evaluator.chunks):
            best[chunk.doc_id] = max(best.get(chunk.doc_id, -1.0), float(score))
        run[query_id] = best
    expected = score_run(run, questions.qrels, ("nDCG@10", "RR@10"))
    measured = evaluator.evaluate(1.0, 1.0, "document", ("nDCG@10", "RR@10"))
    assert measured.keys() == expected.keys()
    for query_id in expected:
        for measure in ("nDCG@10", "RR@10"):
            assert measured[query_id][measure] == pytest.approx(expected[query_id][measure], abs=1e-6)


def test_sweep_embeds_corpus_once_per_document_schedule_and_queries_once_per_query_schedule(
    questions, minilm, monkeypatch
):
    counter = CountingEncoder(monkeypatch)
    evaluator = EmbeddedEvaluator(questions, minilm)
    documents = {"1.0": ConstantSchedule(1.0), "0.8": ConstantSchedule(0.8)}
    queries = {"1.0": ConstantSchedule(1.0), "0.9": ConstantSchedule(0.9)}
    results = run_sweep(evaluator, documents, queries, levels=("document", "chunk"), measures=("nDCG@10",))
    assert counter.texts["document"] == 2 * len(evaluator.chunks)
    assert counter.texts["query"] == 2 * len(questions.queries)
    for level, result in results.items():
        assert set(result.cells) == {(d, q) for d in documents for q in queries}
        assert result.means("nDCG@10").shape == (2, 2)
        assert all(len(per_query) > 0 for per_query in result.cells.values()), level


def test_lower_tau_changes_vectors_and_chunk_level_uses_span_qrels(questions, evaluator):
    at_one, at_low = evaluator.chunk_vectors(1.0), evaluator.chunk_vectors(0.7)
    cosine = np.sum(at_one * at_low, axis=1)
    assert cosine.max() < 0.9999 and cosine.min() > 0.5
    chunk_qrels = evaluator.qrels("chunk")
    assert set(chunk_qrels) <= set(questions.spans)
    chunks = {chunk.chunk_id: chunk for chunk in evaluator.chunks}
    for query_id, relevant in chunk_qrels.items():
        (doc_id,) = questions.qrels[query_id]
        spans = questions.spans[query_id][doc_id]
        for chunk in map(chunks.get, relevant):
            assert chunk.doc_id == doc_id
            assert any(chunk.start < end and start < chunk.end for start, end in spans)
    with pytest.raises(ValueError, match="level"):
        evaluator.evaluate(1.0, 1.0, "page")


def test_disk_cache_serves_a_second_evaluator_without_embedding(questions, minilm, tmp_path, monkeypatch):
    first = EmbeddedEvaluator(questions, minilm, cache_dir=tmp_path)
    expected = first.evaluate(0.9, 1.0)
    counter = CountingEncoder(monkeypatch)
    second = EmbeddedEvaluator(questions, minilm, chunks=first.chunks, cache_dir=tmp_path)
    assert second.evaluate(0.9, 1.0) == expected
    assert counter.texts == {"document": 0, "query": 0}


def test_disk_cache_keeps_precisions_and_backends_apart(questions, minilm, tmp_path, monkeypatch):
    """An int8 (ONNX) embedding of the same weights must not be served the float32 run's cached vectors."""
    EmbeddedEvaluator(questions, minilm, cache_dir=tmp_path).chunk_vectors(1.0)
    counter = CountingEncoder(monkeypatch)
    for changed in ({"backend": "onnx"}, {"backend": "onnx", "precision": "int8"}):
        other = minilm.model_copy(update=changed)  # same weights and schedules; only how they run differs
        EmbeddedEvaluator(questions, other, cache_dir=tmp_path).chunk_vectors(1.0)
    assert counter.texts["document"] == 2 * len(chunk_dataset(questions, minilm))


def test_length_dependent_schedules_reuse_rows_of_cached_constants(evaluator, monkeypatch):
    at_one, at_low = evaluator.chunk_vectors(1.0), evaluator.chunk_vectors(0.9)
    counts = np.array(evaluator.chunk_token_counts())
    assert (counts <= 128).any() and (counts > 128).any()
    counter = CountingEncoder(monkeypatch)
    step = evaluator.chunk_vectors(PiecewiseSchedule([128], [1.0, 0.9]))
    assert counter.texts["document"] == 0
    np.testing.assert_array_equal(step, np.where((counts <= 128)[:, None], at_one, at_low))
    loglinear = LogLinearSchedule(64, 1.0, 256, 0.9)
    vectors = evaluator.chunk_vectors(loglinear)
    taus = np.array(loglinear.taus(counts))
    reused = np.isclose(taus, 0.9, rtol=0, atol=1e-12) | np.isclose(taus, 1.0, rtol=0, atol=1e-12)
    assert counter.texts["document"] == int((~reused).sum()) > 0
    direct = evaluator.embedding.encode([c.text for c in evaluator.chunks], temperature_override=loglinear).embeddings
    np.testing.assert_allclose(vectors, direct, atol=1e-5)


def test_heatmap_table_and_json(evaluator, tmp_path):
    documents = {"1.0": ConstantSchedule(1.0), "0.8": ConstantSchedule(0.8)}
    result = run_sweep(evaluator, documents, {"1.0": ConstantSchedule(1.0)}, measures=("nDCG@10",))["document"]
    png = plot_heatmap(result, tmp_path / "heat.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = sweep_markdown(result, ("1.0", "1.0"))
    assert table.count("\n") == 3 and "| 0.8 | 1.0 |" in table
    saved = json.loads(result.save_json(tmp_path / "sweep.json").read_text())
    assert {(c["document"], c["query"]) for c in saved["cells"]} == {("1.0", "1.0"), ("0.8", "1.0")}
    with pytest.raises(KeyError, match="baseline"):
        result.compare(("0.5", "1.0"))


def test_chunk_dataset_rejects_an_empty_corpus(questions, minilm):
    empty = questions.subset([])
    empty.corpus = {"blank": "   "}
    with pytest.raises(ValueError, match="no non-empty document"):
        chunk_dataset(empty, minilm)


def test_sweep_command_writes_report_json_and_heatmap(small_qmsum_dir, tmp_path):
    output = tmp_path / "out"
    arguments = ["sweep", str(small_qmsum_dir), "-o", str(output), "--qmsum-queries", "questions"]
    arguments += ["--document-tau", "0.8", "--query-tau", "1.0", "--level", "document", "--level", "chunk"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    for name in ("sweep.md", "sweep-document.json", "sweep-document.png", "sweep-chunk.json", "sweep-chunk.png"):
        assert (output / name).stat().st_size > 0
    report = (output / "sweep.md").read_text()
    assert "## chunk level" in report and "| 0.8 | 1.0 |" in report
    bad = CliRunner().invoke(app, ["sweep", str(small_qmsum_dir), "-o", str(output), "--document-tau", "hot"])
    assert bad.exit_code != 0 and "hot" in bad.output
