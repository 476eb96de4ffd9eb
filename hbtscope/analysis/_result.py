"""One way to turn an analysis result (a dataclass) into plain scalars for a run file or JSON."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["scalar_dict"]

Scalar = float | int | str | bool | list[float]


def scalar_dict(
    result: Any,
    *,
    rename: Mapping[str, str] | None = None,
    tuples: bool = True,
) -> dict[str, Scalar]:
    """The scalar fields of a dataclass ``result`` as plain Python values, in field order.

    Arrays are left out; ``bool``/``str`` stay as they are, integers become ``int``, other
    numbers ``float``; tuples of numbers become lists of floats (or are left out with
    ``tuples=False``). ``rename`` maps field names to the keys wanted in the output.
    """
    names = rename or {}
    out: dict[str, Scalar] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        key = names.get(f.name, f.name)
        if isinstance(value, np.ndarray) or value is None:
            continue
        if isinstance(value, tuple):
            if tuples:
                out[key] = [float(v) for v in value]
            continue
        if isinstance(value, bool | np.bool_):
            out[key] = bool(value)
        elif isinstance(value, str):
            out[key] = value
        elif isinstance(value, int | np.integer):
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out
