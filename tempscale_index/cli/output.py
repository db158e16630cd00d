"""What the command line writes where: results on stdout; one-line errors and our own warnings on stderr;
third-party warnings, log lines and load bars only with ``--verbose``; progress bars only on a terminal."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from tqdm import tqdm

# typer >= 0.29 vendors click, older versions use it: its UsageError is BadParameter's base in both
_USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

# read by transformers, huggingface_hub and tokenizers when they load, which is after this runs
QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TORCH_LOGS": "-onnx",  # the ONNX exporter's "torchvision is not installed" lines (torch's own handler)
}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (test runners swap it per call), on a line of its
    own: a progress bar being drawn (embedding, diagnose) is cleared first and redrawn below the message."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def configure_output(verbose: bool) -> None:
    """Route logging and warnings for one command run (idempotent: a second call replaces the first's setup)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    root.addHandler(handler)
    logging.getLogger("tempscale_index").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(verbose)
    if verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.setLevel(logging.INFO)
        return
    handler.setFormatter(_OneLine())
    root.setLevel(logging.ERROR)  # third-party loggers (torch's exporter, Ray, LlamaIndex) stay silent
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    _silence_loaded_libraries()
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"tempscale_index(\.|$)")
    warnings.showwarning = _warning_as_log_line


def _silence_loaded_libraries() -> None:
    """The environment settles libraries loaded later; those already loaded (an in-process caller) are told."""
    if "torch" in sys.modules:
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def _warning_as_log_line(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    logging.getLogger("tempscale_index").warning("%s", message)


def show_progress(requested: bool) -> bool:
    """Progress bars go to stderr, and only to a terminal: a file or a pipe gets none."""
    return requested and sys.stderr.isatty()


@contextmanager
def one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except _USAGE_ERROR as exc:
        raise _OneLineUsageError(exc) from None


class _OneLineUsageError(typer.BadParameter):
    """A usage error shown as ``error: …`` plus where to find help, on one line."""

    def __init__(self, original: Any) -> None:
        super().__init__(original.format_message(), ctx=original.ctx)

    def format_message(self) -> str:
        return self.message

    def show(self, file: Any = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        typer.echo(f"error: {' '.join(self.format_message().split())}{hint}", err=True)
