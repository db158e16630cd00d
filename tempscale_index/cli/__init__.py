"""The ``tempscale-index`` command line: a thin layer over the package's Python API.

Command modules import only typer and the standard library at the top; each command imports the heavy parts
(torch, transformers, LlamaIndex) when it runs, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tempscale_index.cli.output import configure_output, one_line_usage_errors


class _Group(TyperGroup):
    """Usage errors (unknown option, value out of range) as one ``error:`` line, like every other error."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        with one_line_usage_errors():
            return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        with one_line_usage_errors():
            return super().invoke(ctx)


app = typer.Typer(
    name="tempscale-index",
    cls=_Group,
    help="TempScale embeddings for long documents: ingest, query, evaluate, calibrate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: whole option names at any width, and no rich import
    context_settings={"max_content_width": 120},
)


@app.callback()
def _global_options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show third-party warnings, load bars and info logs.")
    ] = False,
) -> None:
    configure_output(verbose)


def main() -> None:
    app()


# Each module registers its commands on ``app`` when imported.
from tempscale_index.cli import analysis, batch, evaluation, pipeline, serve  # noqa: E402,F401
