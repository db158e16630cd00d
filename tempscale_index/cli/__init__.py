"""The ``tempscale-index`` command line: a thin layer over the package's Python API.

Command modules import only typer and the standard library at the top; each command imports the heavy parts
(torch, transformers, LlamaIndex) when it runs, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from tempscale_index.cli.output import configure_output, one_line_usage_errors


class _Command(TyperCommand):
    """Usage lines in the usual shell style (``INDEX``, ``[PATHS]...``), not typer's ``{index}``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = (param.metavar or param.name or "").upper()
                pieces.append((name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else ""))
        return pieces


class _Argument(TyperArgument):
    """An argument with a metavar shows that name alone in the help, not typer's ``<list[Path]>`` beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.metavar else super().display_type_rich(ctx)


class _Group(TyperGroup):
    """Usage errors (unknown option, value out of range) as one ``error:`` line, like every other error; every
    command's usage line drawn by ``_Command`` (typer builds the commands, so their class is set here, once)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if type(command) is TyperCommand:
                command.__class__ = _Command
            for param in command.params:
                if type(param) is TyperArgument:
                    param.__class__ = _Argument

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
