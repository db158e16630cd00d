"""Converters of public labelled corpora (AMI meetings, SQuALITY stories) into BEIR folders, on tiny fixtures."""

from __future__ import annotations

import json

import pytest

from tempscale_index.evaluation.public_corpora import ami_corpus, load_public, main, read_source, squality_corpus

STORY = """Um okay, so this is the kick-off meeting. We design a remote control.
Mm-hmm. The budget is twelve fifty Euro.



@highlight

The project manager opened the meeting.

@highlight

The team   discussed the budget.
"""


def test_ami_story_becomes_a_meeting_with_its_summary_as_the_query(tmp_path):
    folder = tmp_path / "ami"
    folder.mkdir()
    (folder / "ES2002a.story").write_text(STORY)
    (folder / "empty.story").write_text("@highlight\n\nno transcript here\n")
    dataset = ami_corpus(read_source(folder), "ami")
    assert list(dataset.corpus) == ["ES2002a"]
    assert dataset.corpus["ES2002a"].startswith("Um okay") and "@highlight" not in dataset.corpus["ES2002a"]
    assert dataset.queries == {"ES2002a": "The project manager opened the meeting. The team discussed the budget."}
    assert dataset.qrels == {"ES2002a": {"ES2002a": 1}}


def _squality_record(passage_id: str, story: str) -> dict:
    questions = [
        {"question_number": 1, "question_text": "What is the plot?", "responses": [{"response_text": " A"}]},
        {"question_number": 2, "question_text": "Describe the setting", "responses": [{"response_text": "B"}]},
        {"question_number": 3, "question_text": "Who is Noork?", "responses": [{"response_text": ""}]},
    ]
    return {"metadata": {"passage_id": passage_id}, "document": story, "questions": questions}


def test_squality_story_is_the_document_and_each_first_response_a_query(tmp_path):
    source = tmp_path / "test.jsonl"
    source.write_text("\n".join(json.dumps(_squality_record(pid, f"Story {pid}.")) for pid in ("1", "2")) + "\n")
    dataset = squality_corpus(read_source(source), "squality")
    assert dataset.corpus == {"story-1": "Story 1.", "story-2": "Story 2."}
    assert dataset.queries == {"story-1-q1": "A", "story-1-q2": "B", "story-2-q1": "A", "story-2-q2": "B"}
    assert dataset.qrels["story-2-q2"] == {"story-2": 1}  # an empty response is no query


def test_cli_writes_a_folder_the_validation_loader_reads(tmp_path, capsys):
    folder = tmp_path / "ami"
    folder.mkdir()
    (folder / "IS1000a.story").write_text(STORY)
    main(["ami", str(folder), str(tmp_path / "out"), "--source", "fixture", "--licence", "CC BY 4.0"])
    assert "1 documents, 1 queries" in capsys.readouterr().out
    dataset = load_public(tmp_path / "out")
    assert list(dataset.corpus) == ["IS1000a"] and len(dataset.queries) == 1
    assert json.loads((tmp_path / "out" / "SOURCE.json").read_text())["licence"] == "CC BY 4.0"


@pytest.mark.parametrize("kind", ["ami", "squality", "squad"])
def test_cli_wrong_file_for_the_kind_is_one_error_line(kind, tmp_path, capsys):
    source = tmp_path / "wrong.json"
    source.write_text('{"unexpected": true}')
    with pytest.raises(SystemExit) as exit_info:
        main([kind, str(source), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("public_corpora") or "cannot read" in error
    assert f"as {kind} data" in error
