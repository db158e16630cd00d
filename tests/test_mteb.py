"""The MTEB encoder wrapper, run offline on a small local retrieval task built from real QMSum text."""

from __future__ import annotations

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")

from datasets import Dataset  # noqa: E402  (installed with mteb)
from mteb.abstasks.retrieval import AbsTaskRetrieval  # noqa: E402
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402
from mteb.types import PromptType  # noqa: E402

from tempscale_index.chunking import Chunk  # noqa: E402
from tempscale_index.embedding import TempScaleEmbedding  # noqa: E402
from tempscale_index.evaluation import load_qmsum  # noqa: E402
from tempscale_index.evaluation.datasets import RetrievalDataset  # noqa: E402
from tempscale_index.evaluation.embedded import EmbeddedEvaluator  # noqa: E402
from tempscale_index.evaluation.mteb_encoder import TempScaleMTEBEncoder  # noqa: E402


@pytest.fixture(scope="module")
def passages(small_qmsum_dir) -> RetrievalDataset:
    """Specific QMSum questions against the turns that answer them (each answer span is one passage)."""
    questions = load_qmsum(small_qmsum_dir, queries="questions")
    corpus, queries, qrels = {}, {}, {}
    for query_id, by_doc in list(questions.spans.items())[:12]:
        ((doc_id, ranges),) = by_doc.items()
        start, end = ranges[0]
        corpus[query_id] = questions.corpus[doc_id][start:end][:1500]
        queries[query_id] = questions.queries[query_id]
        qrels[query_id] = {query_id: 1}
    return RetrievalDataset(name="qmsum-passages", corpus=corpus, queries=queries, qrels=qrels)


def local_task(dataset: RetrievalDataset) -> AbsTaskRetrieval:
    split = RetrievalSplitData(
        queries=Dataset.from_list([{"id": q, "text": t} for q, t in dataset.queries.items()]),
        corpus=Dataset.from_list([{"id": d, "text": t, "title": ""} for d, t in dataset.corpus.items()]),
        relevant_docs=dataset.qrels,
        top_ranked=None,
    )

    class LocalQMSumPassages(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="LocalQMSumPassages",
            description="QMSum questions against their answering turns (local, offline).",
            reference="https://github.com/Yale-LILY/QMSum",
            dataset={"path": "local", "revision": "local"},
            type="Retrieval",
            category="t2t",
            modalities=["text"],
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            main_score="ndcg_at_10",
            date=("2021-01-01", "2021-01-01"),
            domains=["Spoken"],
            task_subtypes=[],
            license="mit",
            annotations_creators="human-annotated",
            dialect=[],
            sample_creation="found",
            bibtex_citation="",
        )

        def load_data(self, **kwargs):
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    return LocalQMSumPassages()


@pytest.fixture(scope="module")
def encoder() -> TempScaleMTEBEncoder:
    embedding = TempScaleEmbedding(document_temperature=0.8, query_temperature=0.9)
    return TempScaleMTEBEncoder(embedding)


def test_prompt_types_map_to_the_two_schedules(encoder, passages):
    texts = list(passages.queries.values())[:4]
    batches = [{"text": texts[:2]}, {"text": texts[2:]}]
    task = local_task(passages).metadata
    as_query = encoder.encode(
        batches, task_metadata=task, hf_split="test", hf_subset="default", prompt_type=PromptType.query
    )
    as_document = encoder.encode(
        batches, task_metadata=task, hf_split="test", hf_subset="default", prompt_type=PromptType.document
    )
    unspecified = encoder.encode(batches, task_metadata=task, hf_split="test", hf_subset="default")
    embedding = encoder.embedding
    np.testing.assert_allclose(
        as_query, embedding.encode(texts, "query", temperature_override=0.9).embeddings, atol=1e-6
    )
    np.testing.assert_allclose(
        as_document, embedding.encode(texts, "document", temperature_override=0.8).embeddings, atol=1e-6
    )
    np.testing.assert_allclose(unspecified, as_document, atol=1e-6)
    assert np.abs(as_query - as_document).max() > 1e-3


def test_schedules_are_part_of_the_model_identity(encoder, minilm):
    other = TempScaleMTEBEncoder(minilm)
    assert encoder.mteb_model_meta.revision != other.mteb_model_meta.revision
    assert encoder.mteb_model_meta.experiment_kwargs["document_temperature"] == {"type": "constant", "value": 0.8}
    with pytest.raises(ValueError, match="not both"):
        TempScaleMTEBEncoder(minilm, document_temperature=0.8)


def test_mteb_evaluate_agrees_with_our_evaluator(encoder, passages):
    results = mteb.evaluate(
        encoder, local_task(passages), cache=None, overwrite_strategy="always", show_progress_bar=False
    )
    (task_result,) = results.task_results
    mteb_ndcg = task_result.scores["test"][0]["ndcg_at_10"]
    whole = [Chunk(d, d, 0, len(t), t) for d, t in passages.corpus.items()]
    ours = EmbeddedEvaluator(passages, encoder.embedding, chunks=whole).evaluate(
        encoder.embedding.document_temperature, encoder.embedding.query_temperature, measures=("nDCG@10",)
    )
    assert mteb_ndcg == pytest.approx(np.mean([v["nDCG@10"] for v in ours.values()]), abs=1e-4)
    assert 0.2 < mteb_ndcg <= 1.0
