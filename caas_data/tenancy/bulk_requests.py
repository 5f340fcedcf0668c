"""PyMongo's bulk request objects, taken apart and rebuilt, so the guard can rewrite each one.

`bulk_write()` (Beanie's `BulkWriter` among others) hands the guard `InsertOne`, `UpdateOne`...
objects that keep their arguments in private slots. Reading them here, in one place, is the
price of guarding every request as its single-operation twin would be guarded; a kind of
request this module does not know is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from caas_data.errors import UnsafeOperation

__all__ = ["BulkRequest"]

_KINDS: tuple[type[Any], ...] = (
    InsertOne,
    UpdateOne,
    UpdateMany,
    ReplaceOne,
    DeleteOne,
    DeleteMany,
)


@dataclass(frozen=True, slots=True)
class BulkRequest:
    """One bulk request's parts: its kind, filter, body (document, update or replacement)."""

    kind: type[Any]
    filter: Any = None
    body: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, request: Any, **context: Any) -> BulkRequest:
        """The parts of a PyMongo request (an unknown kind is refused, with `context`)."""
        kind = type(request)
        if kind not in _KINDS:
            raise UnsafeOperation(
                f"bulk request {kind.__name__} is not known to the tenant guard", **context
            )
        if kind is InsertOne:
            return cls(kind, body=request._doc)
        options: dict[str, Any] = {"collation": request._collation, "hint": request._hint}
        if kind in (DeleteOne, DeleteMany):
            return cls(kind, filter=request._filter, options=options)
        options["upsert"] = request._upsert
        if kind in (UpdateOne, UpdateMany):
            options["array_filters"] = request._array_filters
        return cls(kind, filter=request._filter, body=request._doc, options=options)

    @property
    def inserts(self) -> bool:
        """True for an `InsertOne` (it has no filter)."""
        return self.kind is InsertOne

    @property
    def updates(self) -> bool:
        """True for `UpdateOne` and `UpdateMany` (the body is an update)."""
        return self.kind in (UpdateOne, UpdateMany)

    @property
    def deletes(self) -> bool:
        """True for `DeleteOne` and `DeleteMany` (no body)."""
        return self.kind in (DeleteOne, DeleteMany)

    def rebuild(self, filter: Any, body: Any) -> Any:
        """The same kind of PyMongo request, with its options, on `filter` and `body`."""
        if self.inserts:
            return InsertOne(body)
        if self.deletes:
            return self.kind(filter, **self.options)
        return self.kind(filter, body, **self.options)
