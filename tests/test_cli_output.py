"""What the command line prints where: results on stdout, nothing else on a quiet success, one-line errors,
our own warnings before the error they explain, third-party chatter only with -v, whole option names in help."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tempscale_index.cli import app
from tests.pipeline_helpers import package_docs, write_corpus

runner = CliRunner()
COMMANDS = ("ingest", "query", "info", "delete", "batch", "eval", "sweep", "diagnose", "calibrate")


def run_cli(*args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a fresh process; stdout and stderr are pipes (not terminals)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": str(columns)}
    env.pop("TRANSFORMERS_VERBOSITY", None)
    return subprocess.run(
        [sys.executable, "-m", "tempscale_index.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus") / "docs"
    write_corpus(folder, package_docs(count=2, max_chars=600))
    return folder


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_whole_option_names_at_80_columns(command: str) -> None:
    done = run_cli(command, "--help", columns=80)
    assert done.returncode == 0, done.stderr
    option_lines = [line for line in done.stdout.splitlines() if line.lstrip().startswith("-")]
    assert option_lines and not any("…" in line for line in option_lines), done.stdout
    if command == "ingest":
        assert "--query-temperature" in done.stdout and "--doc-temperature" in done.stdout
    # metavars in shell style: no typer internals such as {index} or <list[str]>
    assert "<list[" not in done.stdout and not re.search(r"\{[a-z_]+\}", done.stdout), done.stdout


def test_quiet_ingest_and_json_query_write_only_results(corpus, tmp_path) -> None:
    index = str(tmp_path / "index")
    ingest = run_cli("ingest", str(corpus), "--index", index, "--chunk-size", "64")
    assert ingest.returncode == 0 and ingest.stderr == "", ingest.stderr  # no bar on a pipe, no load bars
    query = run_cli("query", index, "templates", "-k", "2", "--json")
    assert query.returncode == 0 and query.stderr == "", query.stderr
    assert len(json.loads(query.stdout)["results"]) == 2
    verbose = run_cli("-v", "query", index, "templates", "-k", "1", "--backend", "torch")
    assert verbose.returncode == 0 and "loading embedding model" in verbose.stderr


def test_skip_warnings_come_before_the_error_they_explain(tmp_path) -> None:
    folder = tmp_path / "unreadable"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"\x80\x81\xfe not utf-8")
    result = runner.invoke(app, ["ingest", str(folder), "--index", str(tmp_path / "index"), "--no-progress"])
    assert result.exit_code != 0
    lines = result.output.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning: skipped unreadable file"))
    error = next(i for i, line in enumerate(lines) if line.startswith("error:"))
    assert warning < error, result.output


def test_a_mismatch_names_the_option_and_the_config_file(corpus, tmp_path) -> None:
    index = tmp_path / "index"
    built = runner.invoke(
        app,
        [
            "ingest",
            str(corpus),
            "--index",
            str(index),
            "--query-temperature",
            "0.9",
            "--chunk-size",
            "64",
            "--no-progress",
        ],
    )
    assert built.exit_code == 0, built.output
    refused = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--query-temperature", "0.5"])
    assert refused.exit_code != 0
    assert "Leave out --query-temperature" in refused.output and "from_index_config" not in refused.output
    config = tmp_path / "tempscale-config.json"
    config.write_text(json.dumps({"query_temperature": 0.7}))
    refused = runner.invoke(app, ["query", str(index), "templates", "--config", str(config)])
    assert refused.exit_code != 0 and f"--config {config}" in refused.output and "0.7" in refused.output
    config.write_text(json.dumps({"query_temperature": 0.9}))
    accepted = runner.invoke(app, ["query", str(index), "templates", "--config", str(config), "--json"])
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["query_tau"] == 0.9


def test_a_warning_during_a_progress_bar_gets_its_own_line(monkeypatch) -> None:
    """diagnose's truncation warning used to land inside the bar's line on a terminal."""
    import io
    import logging

    from tqdm.auto import tqdm

    from tempscale_index.cli.output import configure_output

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    configure_output(verbose=False)
    with tqdm(total=4, desc="Embedding", file=terminal, mininterval=0) as bar:
        bar.update(2)
        logging.getLogger("tempscale_index.test").warning("3 of 10 texts were truncated")
        bar.update(2)
    before, _, after = terminal.getvalue().partition("warning: 3 of 10 texts were truncated")
    assert after and before.endswith(("\r", "\n")), repr(before[-80:])
