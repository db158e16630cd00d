"""Conventions shared by the commands: one-line errors, config files, the embedding an index asks for, and the
command line written into reports."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from tempscale_index.engine.precision import PRECISIONS

if TYPE_CHECKING:
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.index_config import IndexConfig, IndexConfigMismatchError
    from tempscale_index.schedules import Schedule

SCHEDULE_KEYS = ("document_temperature", "query_temperature")
DocTemperatureOption = Annotated[
    str | None,
    typer.Option(
        "--doc-temperature",
        "--document-tau",
        help="Document τ: 'auto' (the default: chosen from the first documents), a number, or schedule JSON.",
    ),
]
TrustCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-code",
        help="Let the index's callable τ schedule ('pkg.module:function') be imported and run: only for indexes "
        "you trust (refused otherwise).",
    ),
]
CONFIG_KEYS = {
    "model",
    "model_name",
    "max_length",
    "query_instruction",
    "text_instruction",
    "chunk_size",
    "chunk_overlap",
    "index_type",
    "precision",
    *SCHEDULE_KEYS,
}


class DatasetFormat(str, Enum):
    auto = "auto"
    beir = "beir"
    llamaindex = "llamaindex"
    qmsum = "qmsum"


class QMSumQueries(str, Enum):
    summaries = "summaries"
    questions = "questions"


class EvalLevel(str, Enum):
    document = "document"
    chunk = "chunk"


PrecisionChoice = Enum("PrecisionChoice", {name: name for name in PRECISIONS}, type=str)  # type: ignore[misc]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read config file {path}: {exc.strerror or exc}", 2)
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        fail(
            f"config file {path} is not valid {'YAML' if path.suffix.lower() in {'.yaml', '.yml'} else 'JSON'}: "
            f"{str(exc).splitlines()[0]}",
            2,
        )
    if not isinstance(data, dict):
        fail(f"config file {path} must hold a mapping of settings, got {type(data).__name__}", 2)
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        fail(f"config file {path}: unknown keys {unknown}; known: {sorted(CONFIG_KEYS)}", 2)
    return data


def parse_schedule(text: str, option: str) -> Schedule:
    """A τ given on the command line: a number like 0.8, or a schedule as a JSON dict; anything else (0, -1,
    nan, an unknown schedule type) ends the command with one ``error:`` line naming the option."""
    from tempscale_index.schedules import as_schedule

    value: Any
    try:
        value = float(text)
    except ValueError:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            fail(f"{option} must be a number like 0.8 or a schedule as JSON, got {text!r}", 2)
    try:
        return as_schedule(value, option)
    except (ValueError, TypeError) as exc:
        fail(f"{option}: {exc}", 2)


def settings_for_embedding(
    config: dict[str, Any], doc_tau: str | float | None, query_tau: float | None, precision: str | None = None
) -> dict[str, Any]:
    """Embedding settings from a config file and options; ``doc_tau`` 'auto', a number or schedule JSON."""
    keys = ("max_length", "query_instruction", "text_instruction", "precision")
    settings = {key: config[key] for key in keys if key in config}
    if "model" in config or "model_name" in config:
        settings["model_name"] = config.get("model_name", config.get("model"))
    for key in SCHEDULE_KEYS:
        if key in config:
            settings[key] = config[key]
    if doc_tau is not None:
        auto = str(doc_tau).strip().lower() == "auto"
        settings["document_temperature"] = "auto" if auto else parse_schedule(str(doc_tau), "--doc-temperature")
    if query_tau is not None:
        settings["query_temperature"] = query_tau
    if precision is not None:
        settings["precision"] = precision
    return settings


@dataclass(frozen=True)
class BuildSettings:
    """What a command that builds an index (``ingest``, ``batch``) was asked for: options over the config file."""

    embedding: dict[str, Any]  # TempScaleEmbedding settings
    chunk_size: int | None  # None: the model's window (or the index's own chunking)
    chunk_overlap: int | None  # None: the default overlap (or the index's own)
    index_type: str | None  # None: Flat (or the index's own type)


def read_build_settings(
    config: Path | None,
    *,
    doc_tau: str | None,
    query_tau: float | None,
    model: str | None = None,
    precision: str | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    index_type: str | None = None,
) -> BuildSettings:
    """The one reader of ``--config`` for ingest and batch: every key it knows is honoured by both, and an option
    given on the command line wins over the file."""
    settings = load_config_file(config) if config is not None else {}
    embedding = settings_for_embedding(settings, doc_tau, query_tau, precision)
    if model is not None:
        embedding["model_name"] = model
    return BuildSettings(
        embedding,
        chunk_size if chunk_size is not None else settings.get("chunk_size"),
        chunk_overlap if chunk_overlap is not None else settings.get("chunk_overlap"),
        index_type if index_type is not None else settings.get("index_type"),
    )


def stored_config(index: Path) -> IndexConfig | None:
    """The configuration an existing index was built with (read from its manifest, no model loaded), or None."""
    from tempscale_index.index_config import IndexConfig
    from tempscale_index.store import FaissStore

    return IndexConfig.from_manifest(FaissStore.read_manifest(index)) if FaissStore.exists(index) else None


def check_settings(index: Path, settings: dict[str, Any]) -> IndexConfig | None:
    """Refuse settings (options, config file) that differ from what an existing index was built with, before any
    model loads; returns the index's configuration (None when there is no index yet)."""
    stored = stored_config(index)
    if stored is not None and settings:
        stored.ensure_matches(stored.with_settings(settings), where=f"the index at {index}")
    return stored


def embedding_for(index: Path, settings: dict[str, Any], trust_code: bool = False) -> TempScaleEmbedding:
    """An existing index's own embedding (settings that differ from it are refused), or a new one from the
    settings."""
    from tempscale_index.embedding import TempScaleEmbedding

    stored = check_settings(index, settings)
    if stored is None:
        return TempScaleEmbedding(**settings)
    return TempScaleEmbedding.from_index_config(stored, trust_callable_schedules=trust_code)


# the command-line options that set each recorded field, across commands (ingest/batch/query and eval)
_OPTIONS_FOR_FIELD = {
    "model_name": ("model",),
    "weights_sha256": ("model",),
    "dimension": ("model",),
    "precision": ("precision",),
    "document_temperature": ("doc_temperature", "document_tau"),
    "query_temperature": ("query_temperature", "query_tau"),
}


def mismatch_message(exc: IndexConfigMismatchError) -> str:
    """The mismatch in command-line terms: which options (or config file) asked for the difference."""
    context = _current_context()
    params = {param.name: param for param in context.command.params} if context is not None else {}
    given = context.params if context is not None else {}
    options: list[str] = []
    unexplained = []
    for field in exc.differences:
        given_options = [
            params[name].opts[-1]
            for name in _OPTIONS_FOR_FIELD.get(field, ())
            if name in params and given.get(name) is not None
        ]
        options += [option for option in given_options if option not in options]
        if not given_options:
            unexplained.append(field)
    if given.get("config") is not None and unexplained:
        options.append(f"--config {given['config']} (its {', '.join(unexplained)})")
    asked = " and ".join(options) if options else "the options that change it"
    return (
        f"{exc.where} was built with a different embedding configuration ({exc.listed()}). Leave out {asked} to "
        "use the index's own settings, or build a new index (another --index directory) with the new ones."
    )


def _current_context() -> Any:
    try:
        from typer.main import get_current_context  # typer >= 0.29 vendors click
    except ImportError:
        from click import get_current_context
    return get_current_context(silent=True)


def error_message(exc: BaseException) -> str:
    from tempscale_index.index_config import IndexConfigMismatchError

    if isinstance(exc, IndexConfigMismatchError) and exc.differences:
        return mismatch_message(exc)
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, FileNotFoundError) and exc.filename and not exc.args[1:]:
        return f"path not found: {exc.filename}"
    text = str(exc) or type(exc).__name__
    return text


def command_line(context: typer.Context) -> str:
    """The command as a shell line (arguments, then options that differ from their defaults), for a report."""
    parts = ["tempscale-index", context.info_name or ""]
    for parameter in context.command.params:
        value = context.params.get(parameter.name or "")
        if parameter.param_type_name == "argument":
            parts.extend(str(item) for item in (value if isinstance(value, (list, tuple)) else [value]))
            continue
        if value is None or value in ([], ()) or _plain(value) == _plain(parameter.default):
            continue
        if isinstance(value, bool):
            parts.append(parameter.opts[0] if value else parameter.secondary_opts[0])
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            parts += [parameter.opts[0], str(_plain(item))]
    return shlex.join(parts)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value
