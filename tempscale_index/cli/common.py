"""Conventions shared by the index-building commands (ingest, query, batch): one-line errors, config files,
and the embedding an index asks for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer

from tempscale_index.schedules import Schedule, as_schedule

SCHEDULE_KEYS = ("document_temperature", "query_temperature")
CONFIG_KEYS = {
    "model", "model_name", "max_length", "query_instruction", "text_instruction", "chunk_size", "chunk_overlap",
    "index_type", "precision", *SCHEDULE_KEYS,
}


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
        fail(f"config file {path} is not valid {'YAML' if path.suffix.lower() in {'.yaml', '.yml'} else 'JSON'}: "
              f"{str(exc).splitlines()[0]}", 2)
    if not isinstance(data, dict):
        fail(f"config file {path} must hold a mapping of settings, got {type(data).__name__}", 2)
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        fail(f"config file {path}: unknown keys {unknown}; known: {sorted(CONFIG_KEYS)}", 2)
    return data


def parse_schedule(text: str, option: str) -> Schedule:
    """A τ given on the command line: a number like 0.8, or a schedule as a JSON dict."""
    value: Any
    try:
        value = float(text)
    except ValueError:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"{option} must be a number like 0.8 or a schedule as JSON, got {text!r}") from None
    return as_schedule(value, option)


def settings_for_embedding(
    config: dict[str, Any], doc_tau: float | None, query_tau: float | None, precision: str | None = None
) -> dict[str, Any]:
    keys = ("max_length", "query_instruction", "text_instruction", "precision")
    settings = {key: config[key] for key in keys if key in config}
    if "model" in config or "model_name" in config:
        settings["model_name"] = config.get("model_name", config.get("model"))
    for key in SCHEDULE_KEYS:
        if key in config:
            settings[key] = config[key]
    if doc_tau is not None:
        settings["document_temperature"] = doc_tau
    if query_tau is not None:
        settings["query_temperature"] = query_tau
    if precision is not None:
        settings["precision"] = precision
    return settings


def embedding_for(index: Path, settings: dict[str, Any]) -> Any:
    """An existing index's own embedding (the settings asked for on top, so that a mismatch is reported), or
    a new one from the settings."""
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.index_config import IndexConfig
    from tempscale_index.store import FaissStore

    if not FaissStore.exists(index):
        return TempScaleEmbedding(**settings)
    stored = IndexConfig(**FaissStore.read_manifest(index)["config"])
    if not settings:
        return stored.build_embedding()
    base = {
        "model_name": stored.model_name,
        "max_length": stored.max_length,
        "normalize": stored.normalize,
        "query_instruction": stored.query_instruction,
        "text_instruction": stored.text_instruction,
        "document_temperature": stored.document_temperature,
        "query_temperature": stored.query_temperature,
        "precision": stored.precision,
    }
    return TempScaleEmbedding(**{**base, **settings})


def error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, FileNotFoundError) and exc.filename and not exc.args[1:]:
        return f"path not found: {exc.filename}"
    text = str(exc) or type(exc).__name__
    return text
