"""Temperature schedules: τ as a function of the token count the model actually sees.

TempScale's premise is that longer inputs collapse more and want a lower τ, so every schedule here is
non-increasing in length by default. A schedule that rises with length is still accepted (calibration on a
user's corpus may find that the corpus wants it) but warns. Every schedule round-trips through a small dict so
it can live in node metadata, index manifests and config files.

τ is documented in (0, 1]: below 1 sharpens attention, which is TempScale's point. τ > 1 flattens it instead; it
is still accepted, because sweeps and ablations need the other side of τ = 1 to show where the optimum lies and a
calibrated schedule may rise above 1 for short texts, but the first τ > 1 of each argument (each option, field or
schedule) logs one warning so that a typo (``8`` for ``0.8``) does not pass silently.

A callable schedule names code to import (``"pkg.module:function"``). Code the caller writes may use it freely;
one read from disk (``stored_schedule``) is refused unless the caller opts in with ``trust_callable_schedules``.
"""

from __future__ import annotations

import importlib
import logging
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

logger = logging.getLogger(__name__)
_warned_tau_above_one: set[str] = set()  # the arguments already warned about

# Lengths probed when checking monotonicity: every length a transformer encoder realistically sees.
_PROBE_LENGTHS = np.unique(np.round(np.geomspace(1, 32768, 256)).astype(int))


def validate_tau(value: Any, name: str = "temperature", argument: str | None = None) -> float:
    """Return ``value`` as a float τ in (0, ∞), or raise naming the argument; τ > 1 is allowed but warned about
    once per ``argument`` (default ``name``; see the module docstring)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive finite float, got {type(value).__name__}: {value!r}")
    tau = float(value)
    if not math.isfinite(tau) or tau <= 0.0:
        raise ValueError(f"{name} must be a positive finite float, got {tau!r}")
    if tau > 1.0 and (argument or name) not in _warned_tau_above_one:
        _warned_tau_above_one.add(argument or name)
        logger.warning(
            "%s = %g is above 1: attention is flattened, not sharpened as TempScale intends (τ in (0, 1]); "
            "kept because sweeps and calibrated schedules may use it (warned once for this argument)",
            name,
            tau,
        )
    return tau


class Schedule(ABC):
    """Maps a token count to a temperature τ > 0."""

    kind: ClassVar[str]
    _registry: ClassVar[dict[str, type[Schedule]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Schedule._registry[cls.kind] = cls

    @abstractmethod
    def tau(self, num_tokens: int) -> float:
        """τ for one text of ``num_tokens`` tokens."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description; ``Schedule.from_dict`` inverts it."""

    def taus(self, token_counts: Sequence[int]) -> list[float]:
        """τ for many texts, validated (a user callable may return anything)."""
        return [validate_tau(self.tau(int(n)), f"{self!r} at {int(n)} tokens", repr(self)) for n in token_counts]

    def is_non_increasing(self) -> bool:
        values = np.asarray(self.taus(_PROBE_LENGTHS))
        return bool(np.all(np.diff(values) <= 1e-12))

    def _warn_if_increasing(self) -> None:
        if not self.is_non_increasing():
            warnings.warn(
                f"{self!r} gives a higher τ to longer texts; TempScale's premise is the opposite. "
                "Keep it only if calibration on your corpus chose it.",
                UserWarning,
                stacklevel=3,
            )

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Schedule:
        if not isinstance(data, dict) or "type" not in data:
            raise ValueError(f"a schedule dict needs a 'type' key, got {data!r}")
        kind = data["type"]
        if kind not in Schedule._registry:
            raise ValueError(f"unknown schedule type {kind!r}; known: {sorted(Schedule._registry)}")
        params = {k: v for k, v in data.items() if k != "type"}
        try:
            return Schedule._registry[kind](**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for schedule {kind!r}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))


@dataclass(eq=False)
class ConstantSchedule(Schedule):
    """One τ for every length: the paper's setting (τ = 0.8 is its default)."""

    value: float
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        self.value = validate_tau(self.value, "value")

    def tau(self, num_tokens: int) -> float:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "value": self.value}


@dataclass(eq=False)
class LogLinearSchedule(Schedule):
    """τ linear in log(length) between two anchors ``(short_tokens, short_tau)`` and
    ``(long_tokens, long_tau)``, clipped to the anchor values outside them."""

    short_tokens: int
    short_tau: float
    long_tokens: int
    long_tau: float
    kind: ClassVar[str] = "loglinear"

    def __post_init__(self) -> None:
        self.short_tau = validate_tau(self.short_tau, "short_tau")
        self.long_tau = validate_tau(self.long_tau, "long_tau")
        if not 1 <= int(self.short_tokens) < int(self.long_tokens):
            raise ValueError(f"need 1 <= short_tokens < long_tokens, got {self.short_tokens} and {self.long_tokens}")
        self.short_tokens, self.long_tokens = int(self.short_tokens), int(self.long_tokens)
        self._warn_if_increasing()

    def tau(self, num_tokens: int) -> float:
        n = min(max(num_tokens, self.short_tokens), self.long_tokens)
        frac = math.log(n / self.short_tokens) / math.log(self.long_tokens / self.short_tokens)
        return self.short_tau + frac * (self.long_tau - self.short_tau)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "short_tokens": self.short_tokens,
            "short_tau": self.short_tau,
            "long_tokens": self.long_tokens,
            "long_tau": self.long_tau,
        }


@dataclass(eq=False)
class PiecewiseSchedule(Schedule):
    """τ by length bucket: ``taus[i]`` applies to lengths ``<= boundaries[i]``; the last τ to longer ones."""

    boundaries: list[int]
    taus_by_bucket: list[float] = field(default_factory=list)
    kind: ClassVar[str] = "piecewise"

    def __post_init__(self) -> None:
        self.boundaries = [int(b) for b in self.boundaries]
        self.taus_by_bucket = [validate_tau(t, "taus_by_bucket") for t in self.taus_by_bucket]
        if len(self.taus_by_bucket) != len(self.boundaries) + 1:
            raise ValueError(
                f"need one τ per bucket: {len(self.boundaries)} boundaries make "
                f"{len(self.boundaries) + 1} buckets, got {len(self.taus_by_bucket)} taus"
            )
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {self.boundaries}")
        self._warn_if_increasing()

    def tau(self, num_tokens: int) -> float:
        return self.taus_by_bucket[int(np.searchsorted(self.boundaries, num_tokens, side="left"))]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "boundaries": self.boundaries, "taus_by_bucket": self.taus_by_bucket}


@dataclass(eq=False)
class CallableSchedule(Schedule):
    """A user function ``tokens -> τ``. Serialisable only when given as an import path ``"pkg.mod:func"``."""

    function: Callable[[int], float] | str
    kind: ClassVar[str] = "callable"

    def __post_init__(self) -> None:
        if isinstance(self.function, str):
            self._path: str | None = self.function
            module_name, _, attr = self.function.partition(":")
            if not attr:
                raise ValueError(
                    f"a callable schedule path must look like 'pkg.module:function', got {self.function!r}"
                )
            self._fn = getattr(importlib.import_module(module_name), attr)
        elif callable(self.function):
            self._path = None
            self._fn = self.function
        else:
            raise TypeError(f"function must be callable or an import path, got {type(self.function).__name__}")
        self._warn_if_increasing()

    def tau(self, num_tokens: int) -> float:
        return self._fn(num_tokens)

    def to_dict(self) -> dict[str, Any]:
        if self._path is None:
            raise ValueError(
                "this callable schedule was given a function object, which cannot be serialised; "
                "pass its import path instead, e.g. CallableSchedule('my_pkg.taus:for_length')"
            )
        return {"type": self.kind, "function": self._path}


class UntrustedScheduleError(ValueError):
    """A schedule read from disk would import and run code, and the caller did not opt in."""


def stored_schedule(data: Any, where: str, trust_callable: bool = False) -> Schedule:
    """A schedule read from disk (an index manifest, a collection's config). A callable one imports and runs
    ``pkg.module:function`` from whoever wrote the file, so it is refused unless the caller opts in, as
    ``trust_remote_code`` does for model code."""
    refuse_untrusted(data, where, trust_callable)
    return Schedule.from_dict(data)


def refuse_untrusted(data: Any, where: str, trust_callable: bool) -> None:
    """Raise ``UntrustedScheduleError`` for a callable schedule's dict unless ``trust_callable``."""
    if not trust_callable and isinstance(data, dict) and data.get("type") == CallableSchedule.kind:
        raise UntrustedScheduleError(
            f"{where} asks to import and run {data.get('function')!r} as its τ schedule; refused, because an index "
            "from someone else must not run code. If you trust its author, pass trust_callable_schedules=True "
            "(command line: --trust-code)"
        )


ScheduleLike = float | int | Schedule | dict | Callable[[int], float]


def as_schedule(value: ScheduleLike, name: str = "temperature") -> Schedule:
    """Accept a float, a schedule, its dict form or a plain callable, and return a schedule."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, dict):
        return Schedule.from_dict(value)
    if value is None:
        raise TypeError(f"{name} must be a float or a schedule, got None")
    if callable(value):
        return CallableSchedule(value)
    return ConstantSchedule(validate_tau(value, name))


# Shipped query default, chosen by measurement (docs/results.md): query τ = 0.9 gained on two corpora but lost up
# to 0.6% nDCG@10 on others (TAT-QA with MiniLM, package docs with MPNet), and the default may lose nowhere, so
# queries — short texts, which do not collapse — keep τ = 1. The document default is "auto" (TempScaleEmbedding).
DEFAULT_QUERY_SCHEDULE: Schedule = ConstantSchedule(1.0)
