"""`tempscale-index ingest | query | info | delete` on a real folder, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tempscale_index.cli import app
from tests.pipeline_helpers import package_docs, write_corpus

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder / "docs", package_docs(count=4, max_chars=1000))
    (folder / "docs" / "broken.txt").write_bytes(b"\x80\x81\xfe not utf-8")
    return folder / "docs"


@pytest.fixture(scope="module")
def index_dir(corpus, tmp_path_factory):
    index = tmp_path_factory.mktemp("built") / "index"
    result = runner.invoke(
        app,
        [
            "ingest",
            str(corpus),
            "--index",
            str(index),
            "--chunk-size",
            "128",
            "--no-progress",
            "--doc-temperature",
            "1.0",
            "--query-temperature",
            "1.0",
        ],
    )
    assert result.exit_code == 0, result.output
    return index


def run(*args: str):
    return runner.invoke(app, list(args))


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_ingest_reports_counts_and_skips_the_unreadable_file(corpus, tmp_path):
    result = run(
        "ingest", str(corpus), "--index", str(tmp_path / "index"), "--chunk-size", "128", "--json", "--no-progress"
    )
    assert result.exit_code == 0, result.output
    assert "warning: skipped unreadable file" in result.output and "broken.txt" in result.output
    report = json.loads(result.stdout)
    assert report["added"] == 4 and len(report["skipped_files"]) == 1 and report["chunks_total"] > 4


def test_query_prints_a_table_and_json(index_dir):
    result = run("query", str(index_dir), "How do I lock a file?", "-k", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("query τ = 1.000") and "score" in lines[1] and "τ" in lines[1]
    assert len(lines) == 5 and "filelock.md" in lines[2]
    result = run("query", str(index_dir), "How do I lock a file?", "-k", "2", "--json")
    payload = json.loads(result.stdout)
    assert payload["query_tau"] == 1.0 and len(payload["results"]) == 2
    first = payload["results"][0]
    assert first["source"] == "filelock.md" and first["tau"] == 1.0 and first["doc_id"].endswith("filelock.md")
    assert first["score"] >= payload["results"][1]["score"]


def test_query_backends_return_the_same_chunks(index_dir):
    results = {
        backend: json.loads(
            run("query", str(index_dir), "How do I lock a file?", "-k", "3", "--json", "--backend", backend).stdout
        )["results"]
        for backend in ("torch", "onnx")
    }
    assert [r["node_id"] for r in results["torch"]] == [r["node_id"] for r in results["onnx"]]
    assert [r["score"] for r in results["torch"]] == pytest.approx([r["score"] for r in results["onnx"]], abs=1e-4)


def test_query_filters_by_doc_id_and_file_name(index_dir):
    result = run("query", str(index_dir), "How do I lock a file?", "-k", "3", "--json", "--file-name", "jinja2.md")
    assert {row["source"] for row in json.loads(result.stdout)["results"]} == {"jinja2.md"}
    doc_id = json.loads(run("info", str(index_dir), "--json", "--documents").stdout)["document_ids"][0]
    result = run("query", str(index_dir), "How do I lock a file?", "-k", "3", "--json", "--doc-id", doc_id)
    assert {row["doc_id"] for row in json.loads(result.stdout)["results"]} == {doc_id}


def test_info_shows_model_schedules_and_counts(index_dir):
    result = run("info", str(index_dir), "--documents")
    assert result.exit_code == 0, result.output
    assert "documents:    4" in result.output and "index type:   Flat" in result.output
    assert '"value": 1.0' in result.output and "all-MiniLM-L6-v2" in result.output
    info = json.loads(run("info", str(index_dir), "--json").stdout)
    assert info["chunking"] == {"chunk_size": 128, "chunk_overlap": 32} and info["documents"] == 4


def test_delete_then_query_no_longer_returns_the_document(corpus, tmp_path, monkeypatch):
    """``delete --doc-id`` takes the path as the user typed it at ingest (relative), not only the stored id."""
    index = tmp_path / "index"
    monkeypatch.chdir(corpus.parent)
    assert run("ingest", corpus.name, "--index", str(index), "--no-progress").exit_code == 0
    shown = run("info", str(index)).output  # 'auto' on four documents: too few, so τ = 1 settled, saying so
    assert "chosen by auto: τ = 1 for this index: auto pending" in shown and "sampled:      " in shown
    doc_id = str((corpus / "filelock.md").resolve())
    result = run("delete", str(index), "--doc-id", f"{corpus.name}/filelock.md")
    assert result.exit_code == 0 and "deleted 1 document(s)" in result.output
    rows = json.loads(run("query", str(index), "How do I lock a file?", "-k", "10", "--json").stdout)["results"]
    assert rows and all(row["doc_id"] != doc_id for row in rows)
    line = error_line(run("delete", str(index), "--doc-id", doc_id))
    assert "no document with id" in line and f"info {index} --documents" in line


def test_config_file_with_schedules_and_index_type(corpus, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "document_temperature: {type: loglinear, short_tokens: 16, short_tau: 1.0, long_tokens: 128, long_tau: 0.85}\n"
        "query_temperature: 0.9\nindex_type: HNSW32\nchunk_size: 100\n"
    )
    index = tmp_path / "index"
    result = run("ingest", str(corpus), "--index", str(index), "--config", str(config), "--no-progress")
    assert result.exit_code == 0, result.output
    info = json.loads(run("info", str(index), "--json").stdout)
    assert info["index_factory"] == "HNSW32" and info["config"]["document_temperature"]["type"] == "loglinear"
    assert info["config"]["query_temperature"] == {"type": "constant", "value": 0.9}
    payload = json.loads(run("query", str(index), "file locking", "--json").stdout)
    assert payload["query_tau"] == 0.9 and {row["tau"] for row in payload["results"]} <= set(
        [round(v, 6) for v in (0.85, 1.0)] + [row["tau"] for row in payload["results"] if 0.85 < row["tau"] < 1.0]
    )
    # asking for another query τ on this index is refused, naming the difference
    line = error_line(run("ingest", str(corpus), "--index", str(index), "--query-temperature", "0.5", "--no-progress"))
    assert "different embedding configuration" in line and "query_temperature" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "/no/such/path", "--index", "{tmp}/i"], "error: path not found: /no/such/path"),
        (["ingest", "--index", "{tmp}/i"], "error: give at least one PATH"),
        (["ingest", "{empty}", "--index", "{tmp}/i"], "error: no text to ingest"),
        (["ingest", "{corpus}", "--index", "{tmp}/i", "--index-type", "Nope7"], "error: index type 'Nope7' is not"),
        (["ingest", "{corpus}", "--index", "{tmp}/i", "--config", "{tmp}/bad.json"], "error: config file"),
        (["query", "{tmp}/nothing", "text"], "error: no index at"),
        (["query", "{index}", "text", "-k", "0"], "error: Invalid value for '-k' / '--top-k'"),
        (["query", "{index}", "text", "--backend", "gpu"], "error: Invalid value for '--backend'"),
        (["ingest", "{corpus}", "--index", "{tmp}/i", "--precision", "int4"], "error: Invalid value for '--precision'"),
        (["info", "{tmp}/nothing"], "error: no index at"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(args, message, tmp_path, corpus, index_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.md").write_text("\n\n")
    (tmp_path / "bad.json").write_text("{not json")
    values = {"tmp": tmp_path, "empty": tmp_path / "empty", "corpus": corpus, "index": index_dir}
    result = run(*[arg.format(**values) for arg in args])
    assert result.exit_code != 0
    assert error_line(result).startswith(message)


@pytest.mark.parametrize("tau", ["0", "-1", "nan", "abc", '{"type":"bogus"}'])
def test_a_bad_document_tau_is_one_error_line(tau, tmp_path, corpus):
    result = run("ingest", str(corpus), "--index", str(tmp_path / "i"), "--document-tau", tau, "--no-progress")
    assert result.exit_code == 2, result.output
    assert error_line(result).startswith("error: --doc-temperature") and "Traceback" not in result.output
    assert not (tmp_path / "i").exists()


def test_console_script_runs_as_a_subprocess(index_dir):
    """The installed entry point, as a user types it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    script = [sys.executable, "-c", "from tempscale_index.cli import main; main()"]
    done = subprocess.run(
        [*script, "query", str(index_dir), "Jinja templates", "-k", "1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["source"] == "jinja2.md"
    done = subprocess.run(
        [*script, "info", str(index_dir / "missing")], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 1 and done.stderr.strip().startswith("error: no index at")
    assert len(done.stderr.strip().splitlines()) == 1


def test_batch_and_ingest_read_one_config_alike(tmp_path, monkeypatch):
    """``--config`` is read in one place: chunk_size, chunk_overlap and index_type reach ``batch`` as they reach
    ``ingest`` (the work itself is replaced by recorders: this is about what each command is asked to do)."""
    import tempscale_index.batch as batch
    import tempscale_index.batch.job as job
    import tempscale_index.cli.batch as batch_cli
    import tempscale_index.cli.pipeline as pipeline_cli
    import tempscale_index.pipeline as pipeline

    config = tmp_path / "config.yaml"
    config.write_text("chunk_size: 100\nchunk_overlap: 10\nindex_type: HNSW32\ndocument_temperature: 1.0\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("some text")
    seen: dict[str, dict] = {}

    class Stop(Exception):
        pass

    def record(name):
        def recorder(*args, **kwargs):
            seen[name] = kwargs
            if name in ("batch", "ingest"):
                raise Stop(name)

        return recorder

    monkeypatch.setattr(
        batch_cli, "embedding_for", lambda index, settings, *trust: type("E", (), {"index_config": dict})()
    )
    monkeypatch.setattr(pipeline_cli, "embedding_for", lambda index, settings, *trust: None)
    monkeypatch.setattr(job, "calibrate_on_driver", record("calibrate"))
    monkeypatch.setattr(batch, "FaissShardSink", record("sink"))
    monkeypatch.setattr(batch, "run_batch_job", record("batch"))
    monkeypatch.setattr(pipeline, "ingest", record("ingest"))
    for command in ("batch", "ingest"):
        result = run(command, str(tmp_path / "docs"), "--index", str(tmp_path / "i"), "--config", str(config))
        assert f"error: {command}" in result.output, result.output  # stopped by the recorder, as planned
    assert seen["sink"]["index_factory"] == seen["ingest"]["index_factory"] == "HNSW32"
    for key, value in (("chunk_size", 100), ("chunk_overlap", 10)):
        assert seen["batch"][key] == seen["calibrate"][key] == seen["ingest"][key] == value
