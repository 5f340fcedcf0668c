"""Beanie's find queries on the layer's documents, without re-deriving per call what never changes.

Every `find_one`/`find`/`get` Beanie runs builds its query in Python (issue 16: reads through
Beanie's API cost as much as plain Beanie's, the guard included, against 1.05x raw for the
typed floor). Two of its steps redo, at every call, work whose result is already known:

- `get_projection` rebuilds the projection (every field's stored name) from the model's fields;
  for a layer document it depends only on the class, so it is built once per class.
- `get_filter_query` walks the filter through Beanie's `Encoder`, which keeps str, int, float,
  bool, None, datetime and ObjectId values as they are, and copies dicts (turning keys into
  plain str) and lists. A filter made only of those, in dicts, lists and Beanie's find
  operators (`Cls.field == value`), comes out as the same copy from a walk that skips the
  encoder's chain of type checks (and Beanie's pass that rewrites paths across links, which
  only a `Link` field's path needs). Anything else (an enum, a date, a model, a class with
  `bson_encoders`...) takes Beanie's own encoder, unchanged.

Only the layer's documents take these paths; a plain Beanie class keeps Beanie's functions.
"""

from __future__ import annotations

from typing import Any

import beanie.odm.queries.find as beanie_find
from beanie.odm.fields import ExpressionField
from beanie.odm.operators import BaseOperator
from beanie.odm.operators.find.logical import And
from beanie.odm.queries.find import FindQuery
from beanie.odm.utils.projection import get_projection

from caas_data.documents.base import BaseDocument
from caas_data.documents.beanie_state import PerInitialisation
from caas_data.documents.encoding import BEANIE_KEPT_TYPES
from caas_data.tenancy.snapshots import MAX_DEPTH

__all__ = ["beanie_get_filter_query", "beanie_get_projection", "document_projection"]

# Beanie's own, for every case not taken here.
beanie_get_projection = get_projection
beanie_get_filter_query = FindQuery.get_filter_query

_NOT_PLAIN: Any = object()
# A re-initialised class (perhaps another inheritance state) gets its projection built again.
_projection_of = PerInitialisation(beanie_get_projection)


def document_projection(model: type[Any]) -> dict[str, int] | None:
    """Beanie's `get_projection`, built once per layer document class."""
    if not (isinstance(model, type) and issubclass(model, BaseDocument)):
        return beanie_get_projection(model)
    projection = _projection_of(model)
    # A copy, as Beanie gives each query its own.
    return None if projection is None else dict(projection)


def _get_filter_query(self: FindQuery[Any]) -> dict[str, Any]:
    """Beanie's `FindQuery.get_filter_query`, by a plain copy where the encoder would keep all."""
    document_model = self.document_model
    if (
        self.find_expressions
        and not self.encoders
        and isinstance(document_model, type)
        and issubclass(document_model, BaseDocument)
    ):
        copied = _plain_copy(And(*self.find_expressions).query, 0)
        if copied is not _NOT_PLAIN:
            result: dict[str, Any] = copied
            return result
    return beanie_get_filter_query(self)


def _plain_copy(value: Any, depth: int) -> Any:
    """What Beanie's encoder returns for `value`, or `_NOT_PLAIN` if it would convert anything."""
    kind = type(value)
    if kind in BEANIE_KEPT_TYPES:
        return value
    if depth > MAX_DEPTH:
        return _NOT_PLAIN  # Beanie's encoder decides (and the guard refuses the depth)
    if kind is dict:
        items = value.items()
    elif isinstance(value, BaseOperator):
        items = value.query.items()  # the encoder reads an operator as the mapping it is
    elif kind is list:
        copied_list = []
        for item in value:
            copied = item if type(item) in BEANIE_KEPT_TYPES else _plain_copy(item, depth + 1)
            if copied is _NOT_PLAIN:
                return _NOT_PLAIN
            copied_list.append(copied)
        return copied_list
    else:
        return _NOT_PLAIN
    copied_dict = {}
    for key, item in items:
        key_kind = type(key)
        if key_kind is ExpressionField:
            if key._field_resolution.is_link:
                return _NOT_PLAIN  # a path across a link: Beanie translates it
            key = str(key)  # the encoder turns every non-enum key into a str
        elif key_kind is not str:
            return _NOT_PLAIN
        copied = item if type(item) in BEANIE_KEPT_TYPES else _plain_copy(item, depth + 1)
        if copied is _NOT_PLAIN:
            return _NOT_PLAIN
        copied_dict[key] = copied
    return copied_dict


beanie_find.get_projection = document_projection  # type: ignore[attr-defined]
FindQuery.get_filter_query = _get_filter_query  # type: ignore[method-assign]
