"""Lazy package attributes (PEP 562): a package names what it exports, and each name imports its module on first
use, so that ``import tempscale_index`` and ``tempscale-index --help`` do not pay for torch, transformers and
LlamaIndex.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


class _LazyPackage(ModuleType):
    """A package whose exported names win over same-named submodules, as with eager imports.

    Loading a submodule binds it onto its package (``tempscale_index.pipeline.ingest`` the module); an exported
    name of the same spelling (the function ``ingest``) would then be hidden for good. Refusing that one binding
    keeps the export; the submodule stays reachable through ``sys.modules`` and ``from … import``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and name in self.__dict__.get("_lazy_exports", {}):
            return
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps each public name to its module (relative
    names such as ``".embedding"`` are resolved against the package)."""
    module = sys.modules[package]
    module._lazy_exports = dict(exports)  # type: ignore[attr-defined]
    module.__class__ = _LazyPackage

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source, package), name)
        module.__dict__[name] = value  # cached: later lookups no longer come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(exports))

    return __getattr__, __dir__
