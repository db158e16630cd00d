"""Dataset loaders: BEIR, LlamaIndex QA JSON and real QMSum meetings, with span qrels and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tempscale_index.evaluation.datasets import (
    DatasetFormatError,
    RetrievalDataset,
    load_beir,
    load_dataset,
    load_llamaindex_qa,
    load_qmsum,
)


def write_beir(root: Path, corpus_lines: list[str] | None = None, qrels: str | None = None) -> Path:
    (root / "qrels").mkdir(parents=True)
    corpus_lines = corpus_lines or [
        json.dumps({"_id": "d1", "title": "Cats", "text": "Cats purr."}),
        json.dumps({"_id": 2, "text": "Dogs bark."}),
    ]
    (root / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n")
    queries = [{"_id": "q1", "text": "what purrs"}, {"_id": "q2", "text": "what barks"}, {"_id": "q3", "text": "x"}]
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "qrels" / "test.tsv").write_text(qrels or "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\t2\t2\nq2\td1\t0\n")
    return root


def test_beir_folder_loads_with_titles_numeric_ids_and_only_the_splits_queries(tmp_path):
    dataset = load_beir(write_beir(tmp_path / "tiny"))
    assert dataset.corpus == {"d1": "Cats\n\nCats purr.", "2": "Dogs bark."}
    assert dataset.titles == {"d1": "Cats"}
    assert dataset.qrels == {"q1": {"d1": 1}, "q2": {"2": 2, "d1": 0}}
    assert set(dataset.queries) == {"q1", "q2"}  # q3 has no judgement in this split
    assert dataset.name == "tiny/test"
    assert load_dataset(tmp_path / "tiny").corpus == dataset.corpus


@pytest.mark.parametrize(
    ("corpus_lines", "qrels", "expected"),
    [
        (['{"_id": "d1", "text": "ok"}', '{"_id": "d2", "text": '], None, r"corpus\.jsonl:2: invalid JSON"),
        (['{"_id": "d1", "text": "ok"}', '{"text": "no id"}'], None, r"corpus\.jsonl:2: missing field '_id'"),
        (['{"_id": "d1", "text": 3}'], None, r"corpus\.jsonl:1: field 'text': expected a string"),
        (None, "q1\td1\tyes\n", r"test\.tsv:1: field 'score' must be an integer"),
        (None, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td9\t1\n", r"test\.tsv:3: corpus-id 'd9'"),
        (None, "q1\td1\n", r"test\.tsv:1: expected 3 tab-separated fields"),
    ],
)
def test_malformed_beir_files_name_file_line_and_field(tmp_path, corpus_lines, qrels, expected):
    root = write_beir(tmp_path / "bad", corpus_lines, qrels)
    with pytest.raises(DatasetFormatError, match=expected):
        load_beir(root)


def test_missing_beir_file_is_named(tmp_path):
    root = write_beir(tmp_path / "b")
    (root / "queries.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing queries\.jsonl"):
        load_beir(root)


def test_llamaindex_qa_json_loads(tmp_path):
    # the layout llama_index.finetuning's EmbeddingQAFinetuneDataset.save_json writes (its pydantic model_dump)
    saved = {
        "queries": {"q1": "who purrs?", "q2": "who barks?"},
        "corpus": {"n1": "Cats purr.", "n2": "Dogs bark.", "n3": "Fish swim."},
        "relevant_docs": {"q1": ["n1"], "q2": ["n2", "n3"]},
        "mode": "text",
    }
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(saved, indent=4))
    dataset = load_llamaindex_qa(path)
    assert dataset.corpus == saved["corpus"]
    assert dataset.queries == saved["queries"]
    assert dataset.qrels == {"q1": {"n1": 1}, "q2": {"n2": 1, "n3": 1}}
    assert load_dataset(path).qrels == dataset.qrels


def test_malformed_llamaindex_json_is_reported_with_line_and_field(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text('{\n"queries": {"q1": "x"},\n"corpus": {"n1": "y"},\n"relevant_docs": {"q1": ["n2"]}\n}')
    with pytest.raises(DatasetFormatError, match=r"relevant_docs\['q1'\]: ids not in 'corpus': \['n2'\]"):
        load_llamaindex_qa(path)
    path.write_text('{\n"queries": {"q1": "x"},\n"corpus": {"n1": "y"}\n"relevant_docs": {}\n}')
    with pytest.raises(DatasetFormatError, match=r"qa\.json:4: invalid JSON"):
        load_llamaindex_qa(path)


@pytest.fixture(scope="module")
def meeting_file(qmsum_dir) -> Path:
    return sorted(qmsum_dir.glob("*.json"))[0]


def test_qmsum_questions_get_span_qrels_on_the_exact_turns(meeting_file):
    raw = json.loads(meeting_file.read_text())
    dataset = load_qmsum(meeting_file, "questions")
    doc_id = meeting_file.stem
    text = dataset.corpus[doc_id]
    turns = raw["meeting_transcripts"]
    assert text.split("\n") == [f"{turn['speaker']}: {turn['content']}" for turn in turns]
    assert len(dataset.queries) == len(raw["specific_query_list"])
    for position, item in enumerate(raw["specific_query_list"]):
        query_id = f"{doc_id}/specific-{position}"
        assert dataset.queries[query_id] == item["query"]
        assert dataset.qrels[query_id] == {doc_id: 1}
        ranges = dataset.spans[query_id][doc_id]
        assert len(ranges) == len(item["relevant_text_span"])
        for (start, end), (first, last) in zip(ranges, item["relevant_text_span"]):
            first_turn, last_turn = turns[int(first)], turns[int(last)]
            assert text[start:end].startswith(f"{first_turn['speaker']}: {first_turn['content']}")
            assert text[start:end].endswith(last_turn["content"])
            assert text[start:end].count("\n") == int(last) - int(first)


def test_qmsum_summaries_follow_longembed(qmsum_dir):
    dataset = load_qmsum(qmsum_dir, "summaries")
    raws = {path.stem: json.loads(path.read_text()) for path in qmsum_dir.glob("*.json")}
    assert set(dataset.corpus) == set(raws)
    answers = sum(len(raw["general_query_list"]) + len(raw["specific_query_list"]) for raw in raws.values())
    assert len(dataset.queries) == answers == len(dataset.judged_query_ids)
    assert not dataset.spans
    some_meeting, raw = next(iter(raws.items()))
    assert dataset.queries[f"{some_meeting}/general-0"] == raw["general_query_list"][0]["answer"]
    assert dataset.qrels[f"{some_meeting}/general-0"] == {some_meeting: 1}


def test_malformed_qmsum_names_the_field(tmp_path, meeting_file):
    raw = json.loads(meeting_file.read_text())
    raw["specific_query_list"][1]["relevant_text_span"] = [["5", str(len(raw["meeting_transcripts"]))]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(DatasetFormatError, match=r"specific_query_list\[1\]\.relevant_text_span: turns"):
        load_qmsum(bad, "questions")
    raw = json.loads(meeting_file.read_text())
    del raw["meeting_transcripts"][3]["content"]
    bad.write_text(json.dumps(raw))
    with pytest.raises(DatasetFormatError, match=r"meeting_transcripts\[3\]\.content: expected a string"):
        load_qmsum(bad)


def test_format_detection_and_missing_paths(tmp_path, meeting_file):
    folder = tmp_path / "meetings"
    folder.mkdir()
    shutil.copy(meeting_file, folder)
    assert set(load_dataset(folder, queries="questions").spans) == set(load_qmsum(meeting_file, "questions").spans)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(DatasetFormatError, match="cannot tell the format"):
        load_dataset(tmp_path / "other.json")


def test_spans_outside_their_document_are_rejected():
    with pytest.raises(DatasetFormatError, match=r"span \[3, 40\) of query 'q' lies outside document 'd'"):
        RetrievalDataset("t", {"d": "short text"}, {"q": "x"}, {"q": {"d": 1}}, spans={"q": {"d": [(3, 40)]}})


def test_subset_keeps_corpus_and_selected_queries(meeting_file):
    dataset = load_qmsum(meeting_file, "questions")
    keep = list(dataset.queries)[:2]
    part = dataset.subset(keep, name="dev")
    assert part.corpus is dataset.corpus and list(part.queries) == keep and set(part.spans) == set(keep)
    with pytest.raises(KeyError, match="no queries"):
        dataset.subset(["missing"])
