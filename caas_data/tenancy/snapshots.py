"""Plain copies of what a driver call sends, so that the guard checks exactly what is sent.

Every mapping the guard's rules look into is first copied into a plain `dict` with plain `str`
keys, and strings compare as exact `str`: a look-alike mapping or key cannot show the guard
one thing and the driver another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from caas_data.errors import UnsafeOperation

__all__ = ["MAX_DEPTH", "plain_key", "plain_list", "plain_mapping", "plain_str", "single_stage"]

MAX_DEPTH = 100
"""How deep the guard follows nested filters, pipelines and values before it refuses."""


def plain_key(key: Any) -> str:
    """A field name as the driver will encode it: an exact `str`, or refused."""
    if type(key) is str:
        return key
    if isinstance(key, str):
        # What BSON encodes is the string's own data, whatever its class's methods say.
        return str.__str__(key)
    raise UnsafeOperation(f"field names must be strings, got {type(key).__name__} {key!r}")


def plain_mapping(value: Any, what: str) -> dict[str, Any]:
    """A plain `dict` copy of a mapping, with plain keys (`what` names it in the error)."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise UnsafeOperation(f"{what} must be a mapping, got {type(value).__name__}")
    copy = dict(value)
    for key in copy:
        if type(key) is not str:  # rare: a str subclass or a wrong key, checked one by one
            return {plain_key(k): v for k, v in copy.items()}
    return copy


def plain_str(value: Any) -> str | None:
    """An exact str for a str (or str subclass) value, else None."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    return None


def plain_list(value: Any, what: str) -> list[Any]:
    """A plain `list` copy of a sequence that is not a string or a mapping."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes | Mapping):
        raise UnsafeOperation(f"{what} must be a list, got {type(value).__name__}")
    return list(value)


def single_stage(stage: Any) -> tuple[str, Any]:
    """A pipeline stage's name and body (a stage is a one-key mapping)."""
    if not isinstance(stage, Mapping) or len(stage) != 1:
        raise UnsafeOperation(f"a pipeline stage must be a one-key mapping, got {stage!r}")
    ((name, body),) = dict(stage).items()
    return plain_key(name), body
