"""The numeric precisions a TempScale forward pass runs at, in a module of their own so that configs and the
command line can name them without loading torch."""

from __future__ import annotations

from typing import Literal, get_args

Precision = Literal["float32", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
