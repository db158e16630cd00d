"""The ``tempscale-index`` command line: a thin layer over the package's Python API."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tempscale-index",
    help="TempScale embeddings for long documents: ingest, query, evaluate, calibrate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def main() -> None:
    app()


# Each module registers its commands on ``app`` when imported.
from tempscale_index.cli import analysis, batch, evaluation, pipeline, serve  # noqa: E402,F401
