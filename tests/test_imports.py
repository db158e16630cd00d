"""Light things stay light: the package, ``--help`` and argument errors load no torch, transformers,
sentence-transformers or LlamaIndex (each checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "sentence_transformers", "llama_index")

# runs the given code, then reports which heavy top-level packages ended up imported
PROBE = """
import json, sys
{code}
print("HEAVY=" + json.dumps(sorted({{name.split('.')[0] for name in sys.modules}} & set({heavy!r}))))
"""


def heavy_modules_after(code: str) -> list[str]:
    script = PROBE.format(code=code, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80"},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("HEAVY=")]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1].removeprefix("HEAVY="))


def cli(*args: str) -> str:
    """Run the CLI in-process (inside the probe) and keep going after its SystemExit."""
    return (
        "from tempscale_index.cli import main\n"
        f"sys.argv = ['tempscale-index', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )


def test_package_import_is_light() -> None:
    assert heavy_modules_after("import tempscale_index; tempscale_index.ConstantSchedule(0.8)") == []


def test_subpackages_import_light() -> None:
    code = "import tempscale_index.engine, tempscale_index.pipeline, tempscale_index.evaluation, tempscale_index.batch"
    assert heavy_modules_after(code + "\nimport tempscale_index.index_config, tempscale_index.models") == []


def test_an_export_loads_its_module_on_first_use() -> None:
    assert "torch" in heavy_modules_after("import tempscale_index; tempscale_index.apply_tempscale")


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("query", "--help"),
        ("ingest", "--help"),
        ("eval", "--help"),
        ("calibrate", "--help"),
        ("batch", "--help"),
        ("query", "some-index", "text", "-k", "0"),
        ("ingest", "docs", "--index", "i", "--precision", "int4"),
    ],
)
def test_help_and_argument_errors_are_light(args: tuple[str, ...]) -> None:
    assert heavy_modules_after(cli(*args)) == []


def test_a_same_named_export_beats_its_submodule() -> None:
    """``pipeline.ingest`` is the function even after the module ``pipeline/ingest.py`` has been imported."""
    import importlib

    importlib.import_module("tempscale_index.pipeline.ingest")
    from tempscale_index.pipeline import ingest

    assert callable(ingest) and ingest.__module__ == "tempscale_index.pipeline.ingest"


def imported_modules(path: str) -> set[str]:
    """Every ``tempscale_index`` module a source file names in an import (TYPE_CHECKING and lazy ones included)."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[1] / path).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("tempscale_index")}


@pytest.mark.parametrize("light", ["tempscale_index/index_config.py", "tempscale_index/node_metadata.py"])
def test_plain_data_modules_import_no_embedding(light: str) -> None:
    """The config and the node-metadata keys are plain data the embedding produces: no import circle back to it."""
    heavy = {"tempscale_index.embedding", "tempscale_index.auto_schedule", "tempscale_index.selection"}
    assert imported_modules(light) & heavy == set()


def test_node_metadata_keys_are_spelled_in_one_module() -> None:
    """Readers import the keys from ``node_metadata``; a literal copy elsewhere could drift from what is written."""
    import ast
    from pathlib import Path

    from tempscale_index.node_metadata import METADATA_KEYS

    package = Path(__file__).resolve().parents[1] / "tempscale_index"
    spelled = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "node_metadata.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in METADATA_KEYS
    }
    assert spelled == set()


def test_every_package_export_resolves() -> None:
    """What the README imports from the package root (``TempScaleRetriever`` included) is there."""
    import tempscale_index

    assert "TempScaleRetriever" in tempscale_index.__all__
    for name in tempscale_index.__all__:
        assert getattr(tempscale_index, name) is not None, name
