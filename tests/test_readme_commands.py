"""What the README and docs say a command accepts, it accepts: every ``tempscale-index …`` line in their code
blocks (and inline code) parses — the subcommand exists, each option is known and each value converts — without
running the command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

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
