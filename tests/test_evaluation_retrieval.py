"""Scoring LlamaIndex retrievers on two real QMSum meetings with the bundled MiniLM, checked against a brute-force
recomputation; reports and the ``eval`` command."""

from __future__ import annotations

import json
import shutil
from itertools import pairwise

import numpy as np
import pytest
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from typer.testing import CliRunner

from tempscale_index.cli import app
from tempscale_index.evaluation.chunk_tables import chunk_table
from tempscale_index.evaluation.datasets import load_qmsum
from tempscale_index.evaluation.length_buckets import bucket_means, tokenizer_counter
from tempscale_index.evaluation.report import load_result, write_report
from tempscale_index.evaluation.results import compare_results
from tempscale_index.evaluation.retrieval import build_vector_index, evaluate_retriever

TOP_K = 200  # more than the chunks of two meetings: every chunk is ranked


@pytest.fixture(scope="module")
def meetings(qmsum_dir, tmp_path_factory):
    """The two shortest meetings (about 3.6k and 5k tokens), copied so the CLI can load the same folder."""
    files = sorted(qmsum_dir.glob("*.json"), key=lambda path: path.stat().st_size)[:2]
    folder = tmp_path_factory.mktemp("qmsum2")
    for file in files:
        shutil.copy(file, folder)
    return folder


@pytest.fixture(scope="module")
def indexed(meetings, minilm):
    dataset = load_qmsum(meetings, "questions")
    index, nodes = build_vector_index(dataset, minilm)
    return dataset, index, nodes


@pytest.fixture(scope="module")
def evaluated(indexed, minilm):
    dataset, index, nodes = indexed
    result = evaluate_retriever(
        index.as_retriever(similarity_top_k=TOP_K),
        dataset,
        chunks=chunk_table(nodes),
        count_tokens=tokenizer_counter(minilm.tokenizer),
        settings={"top_k": TOP_K},
    )
    return result


def test_chunks_carry_exact_character_offsets(indexed):
    dataset, _, nodes = indexed
    assert len(nodes) > 20
    for node in nodes:
        assert dataset.corpus[node.ref_doc_id][node.start_char_idx : node.end_char_idx] == node.text
    assert len(chunk_table(nodes)) == len(nodes)


def test_scores_match_a_brute_force_recomputation(indexed, evaluated, minilm):
    """Rank every chunk by cosine in numpy, then derive document and chunk ranks by hand."""
    dataset, _, nodes = indexed
    chunk_vectors = np.array([node.embedding for node in nodes])
    query_ids = dataset.judged_query_ids
    query_vectors = minilm.encode([dataset.queries[q] for q in query_ids], "query").embeddings
    similarities = query_vectors @ chunk_vectors.T
    for row, query_id in zip(similarities, query_ids):
        order = np.argsort(-row)
        doc_order = list(dict.fromkeys(nodes[i].ref_doc_id for i in order))  # first = best chunk
        relevant_doc = next(iter(dataset.qrels[query_id]))
        doc_rank = doc_order.index(relevant_doc) + 1
        assert evaluated.levels["document"].per_query[query_id]["RR@10"] == pytest.approx(1 / doc_rank)

        spans = dataset.spans[query_id][relevant_doc]
        relevant = [
            node.ref_doc_id == relevant_doc
            and any(node.start_char_idx < end and start < node.end_char_idx for start, end in spans)
            for node in (nodes[i] for i in order)
        ]
        first_hit = relevant.index(True) + 1
        chunk_scores = evaluated.levels["chunk"].per_query[query_id]
        assert chunk_scores["RR@10"] == pytest.approx(1 / first_hit if first_hit <= 10 else 0.0)
        assert chunk_scores["R@10"] == pytest.approx(sum(relevant[:10]) / sum(relevant))
        assert chunk_scores["R@100"] == pytest.approx(sum(relevant[:100]) / sum(relevant))


def test_length_buckets_partition_the_queries(evaluated):
    for level in evaluated.levels.values():
        for buckets in (level.by_document_length, level.by_query_length):
            assert sum(bucket.n_queries for bucket in buckets) == len(level.per_query)
            assert sorted(q for bucket in buckets for q in bucket.query_ids) == sorted(level.per_query)
            assert all(low.high < high.low for low, high in pairwise(buckets))
            weighted = sum(bucket.n_queries * bucket.means["nDCG@10"] for bucket in buckets)
            assert weighted / len(level.per_query) == pytest.approx(level.means["nDCG@10"])
    assert len(evaluated.levels["document"].by_document_length) == 2  # one bucket per meeting length
    assert evaluated.length_unit == "tokens"


def test_bucket_means_splits_by_quantiles_and_keeps_ties_together():
    per_query = {f"q{i}": {"m": float(i)} for i in range(9)}
    lengths = {f"q{i}": length for i, length in enumerate([10, 10, 10, 10, 20, 30, 40, 50, 60])}
    buckets = bucket_means(per_query, lengths, 3)
    assert [(b.low, b.high, b.n_queries) for b in buckets] == [(10, 10, 4), (20, 30, 2), (40, 60, 3)]
    assert buckets[0].means == {"m": 1.5} and buckets[0].label == "10"


class KeywordRetriever(BaseRetriever):
    """A retriever with no embeddings at all: ranks chunks by the words they share with the query."""

    def __init__(self, nodes, top_k: int) -> None:
        super().__init__()
        self._nodes, self._top_k = nodes, top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        words = set(query_bundle.query_str.lower().split())
        scored = [NodeWithScore(node=n, score=len(words & set(n.text.lower().split()))) for n in self._nodes]
        return sorted(scored, key=lambda hit: -hit.score)[: self._top_k]


def test_any_llamaindex_retriever_can_be_scored(indexed, meetings):
    dataset, _, nodes = indexed
    result = evaluate_retriever(KeywordRetriever(nodes, 20), dataset, chunks=chunk_table(nodes), n_buckets=2)
    assert set(result.levels) == {"document", "chunk"}
    assert result.length_unit == "words"
    for level in result.levels.values():
        assert set(level.per_query) == set(dataset.judged_query_ids)
        assert all(0.0 <= value <= 1.0 for scores in level.per_query.values() for value in scores.values())
    with pytest.raises(ValueError, match="no span qrels"):
        evaluate_retriever(KeywordRetriever(nodes, 5), load_qmsum(meetings, "summaries"), levels=["chunk"])


def test_report_round_trip_and_self_comparison(evaluated, tmp_path):
    comparisons = compare_results(evaluated, evaluated)
    markdown_path, json_path = write_report(evaluated, tmp_path, baseline=evaluated, comparisons=comparisons)
    assert load_result(json_path) == evaluated
    payload = json.loads(json_path.read_text())
    assert payload["comparisons"]["chunk"][0]["p_value"] == 1.0
    text = markdown_path.read_text()
    assert "## Document level" in text and "## Chunk level" in text and "By query length (tokens)" in text
    assert f"{evaluated.levels['chunk'].means['nDCG@10']:.4f}" in text
    assert "Δ nDCG@10 vs baseline" in text and "+0.0000 [+0.0000, +0.0000] | 1.000 |" in text


def test_eval_command_ingests_an_index_then_reuses_it(meetings, evaluated, tmp_path):
    index_dir, first, second = tmp_path / "index", tmp_path / "first", tmp_path / "second"
    common = ["eval", str(meetings), "--queries", "questions", "--index", str(index_dir), "--top-k", str(TOP_K)]
    completed = CliRunner().invoke(app, [*common, "-o", str(first), "--no-progress"])
    assert completed.exit_code == 0, completed.output
    ingested = load_result(first / "eval.json")
    assert ingested.n_chunks == evaluated.n_chunks  # the pipeline chunks exactly like the in-memory index
    for level, scores in evaluated.levels.items():  # same chunks and model, vectors batched differently
        assert ingested.levels[level].means == pytest.approx(scores.means, abs=0.02)

    arguments = [*common, "--compare-to", str(first / "eval.json"), "-o", str(second), "--no-progress"]
    completed = CliRunner().invoke(app, arguments)
    assert completed.exit_code == 0, completed.output
    payload = json.loads((second / "eval.json").read_text())
    assert payload["result"]["settings"]["precision"] == "float32"  # the report says how to rerun it
    for level in evaluated.levels:
        assert payload["comparisons"][level] and all(c["mean_diff"] == 0.0 for c in payload["comparisons"][level])
    command = payload["command"]
    assert command.startswith(f"tempscale-index eval {meetings} --queries questions --output {second}")
    assert f"--index {index_dir} --top-k {TOP_K} --no-progress" in command
    assert "--chunk-overlap" not in command  # left at its default


def test_eval_command_reports_bad_input_clearly(tmp_path):
    bad = tmp_path / "qa.json"
    bad.write_text('{"queries": {"q": "x"},\n "corpus": {"d": "y"},\n "relevant_docs": {"q": "d"}}')
    completed = CliRunner().invoke(app, ["eval", str(bad), "-o", str(tmp_path / "out")])
    assert completed.exit_code == 2
    assert "relevant_docs['q']: must be a list of corpus ids" in completed.output
    good = tmp_path / "good.json"
    good.write_text('{"queries": {"q": "x"}, "corpus": {"d": "y"}, "relevant_docs": {"q": ["d"]}}')
    completed = CliRunner().invoke(app, ["eval", str(good), "--document-tau", "cold"])
    assert completed.exit_code == 2 and "--document-tau must be a number like 0.8 or a schedule" in completed.output


def test_reports_record_an_unresolved_auto_document_tau_then_its_choice():
    """A report made before "auto" has decided says "auto"; after, it records the schedule chosen."""
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.evaluation.retrieval import embedding_settings

    embedding = TempScaleEmbedding()
    assert embedding_settings(embedding)["document_temperature"] == "auto"
    embedding.calibrate([f"meeting {i}: the team discussed the budget and the remote control design" for i in range(4)])
    assert embedding.selection.pending and embedding_settings(embedding)["document_temperature"] == "auto"
    embedding.settle_pending()  # an index whose whole corpus is these four texts
    assert embedding_settings(embedding)["document_temperature"] == embedding.selection.schedule.to_dict()
