"""The one page model: `Page[T]` and its opaque keyset cursor.

Every paged read (`find`, a conversation's history, an inbox, a search) answers a `Page`;
its `next_cursor` goes back as `after=` for the next page. A cursor carries the sort values
of the page's last item and a fingerprint of the query it was made for (document type,
sort, filter): given to another query it is refused, never silently read as an empty page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import bson
from bson.errors import BSONError

from caas_data.errors import DocumentValidationError

__all__ = ["Page", "decode_cursor", "encode_cursor", "keyset_after", "path_value", "query_shape"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paged query; pass `next_cursor` as `after=` for the next one.

    `has_more` says whether another page follows (then `next_cursor` is set); `total` is the
    number of matches of the whole query when it was asked for (`total=True`), else None.
    Items are documents (`Page[User]`) or what a domain builds from them
    (`Page[ConversationSummary]`, `Page[SearchHit]`).
    """

    items: list[T]
    next_cursor: str | None
    total: int | None = None

    @property
    def has_more(self) -> bool:
        """Whether a next page exists (pass `next_cursor` as `after=` to read it)."""
        return self.next_cursor is not None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def query_shape(kind: str, sort: Sequence[tuple[str, int]], query: Mapping[str, Any]) -> str:
    """A short fingerprint of what a cursor pages through: a name, the sort and the filter.

    Made from `repr` (any filter has one, even a value the server would refuse): the same
    query built the same way gives the same fingerprint.
    """
    text = repr((kind, list(sort), dict(query)))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def encode_cursor(values: list[Any], shape: str) -> str:
    """The opaque cursor after an item whose sort values are `values`, for query `shape`."""
    return base64.urlsafe_b64encode(bson.encode({"k": values, "s": shape})).decode("ascii")


def decode_cursor(cursor: object, shape: str, width: int) -> list[Any]:
    """The sort values a cursor carries, checked to belong to the query `shape`.

    Raises:
        DocumentValidationError: not a cursor, or one made for another query (sort, filter
            or document type); `fields` is `("after",)`.
    """
    if not isinstance(cursor, str):
        raise DocumentValidationError(
            f"after must be a page cursor (a string), got {type(cursor).__name__}",
            fields=("after",),
        )
    try:
        decoded = bson.decode(base64.urlsafe_b64decode(cursor.encode("ascii")))
        values, made_for = decoded["k"], decoded.get("s")
    except (ValueError, KeyError, BSONError, TypeError) as exc:
        raise DocumentValidationError("invalid page cursor", fields=("after",)) from exc
    if made_for != shape or not isinstance(values, list) or len(values) != width:
        raise DocumentValidationError(
            "this page cursor was made for another query (sort, filter or collection): "
            "page that query with it, or start again without after=",
            fields=("after",),
        )
    return values


def keyset_after(keys: Sequence[tuple[str, int]], values: Sequence[Any]) -> dict[str, Any]:
    """Keyset condition: strictly after `values` in the order `keys` describe."""
    clauses = []
    for i, (name, direction) in enumerate(keys):
        clause = {keys[j][0]: values[j] for j in range(i)}
        clause[name] = {"$gt" if direction == 1 else "$lt": values[i]}
        clauses.append(clause)
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def path_value(raw: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` of a stored document (None when absent)."""
    value: Any = raw
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
