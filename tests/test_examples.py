"""The README's quickstart runs and shows τ in the retrieved nodes."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_quickstart_prints_tau_of_retrieved_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    module["main"]("What does FAISS do?")
    lines = [line for line in capsys.readouterr().out.splitlines() if "τ=" in line]
    assert len(lines) == 3
    taus = [float(line.split("τ=")[1].split()[0]) for line in lines]
    assert all(0.9 <= tau <= 1.0 for tau in taus)
