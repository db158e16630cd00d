"""What the README and docs say a command accepts, it accepts: every ``tempscale-index …`` line in their code
blocks (and inline code) parses — the subcommand exists, each option is known and each value converts. The
README's commands that read shipped files (``docs/``, ``tests/fixtures/``…) also *run*, in order, as on a clean
clone; and the docs name no path that exists on one machine only."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tempscale_index.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`(tempscale-index [^`]+)`(?!`)")
SEPARATORS = {"&&", "||", ";", "|"}


def shell_lines(block: str) -> list[list[str]]:
    """The block's shell commands as token lists: backslash continuations and quotes across lines joined,
    comments dropped."""
    commands, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        pending += line + "\n"
        try:
            tokens = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            continue
        pending = ""
        commands.append(tokens)
    return commands


def ours(tokens: list[str]) -> list[list[str]]:
    """The ``tempscale-index SUBCOMMAND …`` parts of one shell command (``a && b`` holds two)."""
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token in SEPARATORS:
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if len(part) > 1 and part[0] == "tempscale-index"]


def commands_in(text: str) -> list[list[str]]:
    """Commands from fenced blocks, and inline code spans that spell out a command with options."""
    found = [command for block in FENCE.findall(text) for tokens in shell_lines(block) for command in ours(tokens)]
    prose = FENCE.sub("", text).replace("\n", " ")
    found += [shlex.split(span) for span in INLINE.findall(prose) if " -" in span and "…" not in span]
    return found


def documented_commands() -> list[pytest.param]:
    return [
        pytest.param(command, id=f"{path.name}: {shlex.join(command)[:80]}")
        for path in DOCUMENTS
        for command in commands_in(path.read_text(encoding="utf-8"))
    ]


def parse(command: list[str]) -> None:
    """Parse ``command`` as the CLI would, up to (not including) running the subcommand."""
    group = typer.main.get_command(app)
    try:
        _parse_with(group, command)
    except typer.Exit as done:  # `--help` parses, prints and exits 0
        if done.exit_code != 0:
            raise


def _parse_with(group: Any, command: list[str]) -> None:
    with group.make_context("tempscale-index", command[1:]) as context:
        # the subcommand and its arguments, as Group.invoke sees them (click keeps the name apart, privately)
        remaining = [*getattr(context, "_protected_args", []), *context.args]
        name, subcommand, rest = group.resolve_command(context, remaining)
        with subcommand.make_context(name, rest, parent=context):
            pass


def test_the_docs_hold_commands_of_every_kind() -> None:
    commands = {param.values[0][1] for param in documented_commands()}
    assert {"ingest", "query", "info", "delete", "eval", "sweep", "diagnose", "calibrate", "batch"} <= commands


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_parses(command: list[str]) -> None:
    parse(command)


def test_a_wrong_option_fails_to_parse() -> None:
    """The check can fail: an option the command lacks is refused."""
    with pytest.raises(Exception, match="No such option"):
        parse(["tempscale-index", "query", "runs/idx", "text", "--no-such-option", "1"])


def test_query_accepts_calibrates_config_file() -> None:
    parse(["tempscale-index", "query", "runs/idx", "budget", "--config", "runs/calibration/tempscale-config.json"])


README = ROOT / "README.md"
OUTPUT_OPTIONS = {"--index", "-i", "-o", "--output"}


def _paths(command: list[str]) -> tuple[list[str], list[str]]:
    """The relative paths a command reads, and those it writes (the values of its output options)."""
    inputs, outputs = [], []
    for previous, token in zip(["", *command], command):
        if "/" not in token or " " in token or token.startswith(("-", "{", "/", "..")):
            continue
        (outputs if previous in OUTPUT_OPTIONS else inputs).append(token.rstrip("/"))
    return inputs, outputs


def runnable_readme_commands() -> list[list[str]]:
    """README commands whose every input is a file a clone has, or one an earlier such command wrote."""
    made: list[str] = []
    runnable = []
    for command in commands_in(README.read_text(encoding="utf-8")):
        inputs, outputs = _paths(command)
        available = [(ROOT / path).exists() or any(path.startswith(out) for out in made) for path in inputs]
        if inputs and all(available):
            runnable.append(command)
            made += outputs
    return runnable


def test_the_readme_commands_on_shipped_files_run_as_written(tmp_path, monkeypatch) -> None:
    """In a folder laid out like a clone (the shipped folders linked in), one after the other."""
    for name in ("docs", "tests", "README.md"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    commands = runnable_readme_commands()
    assert {"ingest", "query", "info", "delete", "eval"} <= {command[1] for command in commands}, commands
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, command[1:])
        assert result.exit_code == 0, f"{shlex.join(command)}\n{result.output}"


def test_the_docs_name_no_machine_only_paths_and_the_shipped_defaults() -> None:
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        assert "/work/" not in text, path.name
    results = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert "0.9 (default)" not in results and "DEFAULT_QUERY_SCHEDULE = ConstantSchedule(0.9)" not in results
