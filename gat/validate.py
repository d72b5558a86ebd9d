"""The one validation: everything the project reads back is checked against a schema before it is used.

A schema is a dict ``{key: expected}``; ``expected`` is

- a Python type (``int``, ``float``, ``str``, ``bool``, ``dict``, ``list``), or a tuple of them; ``bool`` is not
  an ``int`` here and an ``int`` is a ``float``;
- a nested schema (a dict), for a nested mapping;
- :class:`Number` (a type with a range), :class:`Array` (a tensor or numpy array: dtype, dimensions,
  finiteness), :class:`ListOf` (a list whose items all match), :class:`DictOf` (a mapping whose values all
  match), or :class:`Optional` (a key that may be absent).

:func:`check` raises one :class:`GATError` naming the source, the key path and what is wrong, e.g.
``results/runs/cora_gat_seed0.json: 'test_score' must be a number, got str``. A cache that fails is rebuilt by
its owner; a user's file that fails is refused with that line.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gat.errors import GATError, describe_os_error

if TYPE_CHECKING:  # numpy and torch are imported where arrays are checked: configs are checked without them
    import torch


@dataclass(frozen=True)
class Number:
    """An ``int`` (or, with ``kind=float``, a real) within ``[low, high]``; None = unbounded. Never nan, and
    infinite only where a bound says so (``high=math.inf``)."""

    kind: type = int
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Array:
    """A torch tensor or numpy array with one of ``dtypes`` (names such as ``"int64"``), ``ndim`` dimensions
    (None: any) and, with ``finite``, no nan or inf."""

    dtypes: tuple[str, ...]
    ndim: int | None = None
    finite: bool = False


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class DictOf:
    """A mapping from ``str`` keys to values that all match ``item`` (a state dict, a dict of metrics)."""

    item: Any


@dataclass(frozen=True)
class Optional:
    expected: Any


def check(data: Any, schema: Mapping[str, Any], source: str) -> None:
    """Raise `GATError` ``"<source>: <what is wrong>"`` unless ``data`` matches ``schema``."""
    problem = _problem(data, schema, "")
    if problem is not None:
        raise GATError(f"{source}: {problem}")


def read_json(path: str | os.PathLike, schema: Mapping[str, Any]) -> Any:
    """The JSON file at ``path`` once it matches ``schema``; else one `GATError` naming it (unreadable, not JSON,
    or not what the schema says)."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as error:
        raise GATError(f"cannot read {describe_os_error(error)}") from None
    except ValueError as error:  # not UTF-8, or not JSON (a truncated file)
        raise GATError(f"{path}: not a JSON file ({error})") from None
    check(data, schema, os.fspath(path))
    return data


def is_valid(data: Any, schema: Mapping[str, Any]) -> bool:
    """Whether ``data`` matches ``schema`` (for caches, which are rebuilt rather than refused)."""
    return _problem(data, schema, "") is None


def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding nan or inf, else None."""
    import torch

    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def _problem(value: Any, expected: Any, where: str) -> str | None:
    """What is wrong with ``value`` at key path ``where``, or None."""
    label = repr(where) if where else "the file"
    if isinstance(expected, Mapping):
        if not isinstance(value, Mapping):
            return f"{label} must be a mapping, got {_kind(value)}"
        for key, inner in expected.items():
            path = f"{where}.{key}" if where else key
            if key not in value:
                if isinstance(inner, Optional):
                    continue
                return f"{path!r} is missing"
            problem = _problem(value[key], inner.expected if isinstance(inner, Optional) else inner, path)
            if problem is not None:
                return problem
        return None
    if isinstance(expected, ListOf):
        if not isinstance(value, list | tuple):
            return f"{label} must be a list, got {_kind(value)}"
        for index, item in enumerate(value):
            problem = _problem(item, expected.item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(expected, DictOf):
        if not isinstance(value, Mapping):
            return f"{label} must be a mapping, got {_kind(value)}"
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            problem = f"{path!r}: keys must be strings" if not isinstance(key, str) else None
            problem = problem or _problem(item, expected.item, path)
            if problem is not None:
                return problem
        return None
    if isinstance(expected, Number):
        return _number_problem(value, expected, label)
    if isinstance(expected, Array):
        return _array_problem(value, expected, label)
    types = expected if isinstance(expected, tuple) else (expected,)
    if not any(_is_instance(value, kind) for kind in types):
        return f"{label} must be {' or '.join(_NAMES.get(kind, kind.__name__) for kind in types)}, got {_kind(value)}"
    return None


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
          list: "a list", type(None): "null"}  # fmt: skip


def _is_instance(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _number_problem(value: Any, expected: Number, label: str) -> str | None:
    if not _is_instance(value, expected.kind):
        return f"{label} must be {_NAMES[expected.kind]}, got {_kind(value)}"
    low = -math.inf if expected.low is None else expected.low
    high = math.inf if expected.high is None else expected.high
    if math.isinf(value) and value not in (expected.low, expected.high):
        return f"{label} must be finite, got {value}"
    if not low <= value <= high:
        return f"{label} must be in [{low:g}, {high:g}], got {value}"
    return None


def _array_problem(value: Any, expected: Array, label: str) -> str | None:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        dtype, ndim = str(value.dtype).removeprefix("torch."), value.dim()
    elif isinstance(value, np.ndarray):
        dtype, ndim = str(value.dtype), value.ndim
    else:
        return f"{label} must be an array, got {_kind(value)}"
    if dtype not in expected.dtypes:
        return f"{label} must have dtype {' or '.join(expected.dtypes)}, got {dtype}"
    if expected.ndim is not None and ndim != expected.ndim:
        return f"{label} must have {expected.ndim} dimension(s), got shape {list(value.shape)}"
    if expected.finite and not bool(np.isfinite(np.asarray(value)).all()):
        return f"{label} holds nan or inf"
    return None


def _kind(value: Any) -> str:
    return type(value).__name__
