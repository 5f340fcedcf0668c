"""Message search by words within a tenant: a portable keyword index, `$text` where it exists.

Every message stores `terms`, its normalised words (see `search_terms`), in a multikey index
`{tenant_id, terms}` (and `{tenant_id, conversation_id, terms}`). A search matches any query
term and ranks by how many terms matched, then by recency. This runs on every server.

Where the server supports text indexes, a `{tenant_id, text: "text"}` index is created at the
first search of each physical collection and `$text` ranks by its score instead. Whether the
server supports them is found out once per layer, by trying to create that index; the embedded
test server refuses text indexes, so the portable path runs there.
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from beanie import PydanticObjectId
from pymongo.errors import OperationFailure

from caas_data.documents.saas.messaging import Message
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import DocumentValidationError
from caas_data.repositories.base import Repository
from caas_data.repositories.pages import (
    Page,
    decode_cursor,
    encode_cursor,
    keyset_after,
    query_shape,
)
from caas_data.repositories.values import check_limit

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = ["MessageSearchRepository", "SearchHit", "search_terms"]

MAX_TERMS = 256
MAX_TERM_LENGTH = 64
TEXT_INDEX_NAME = "tenant_text"

# Short, frequent words that would match almost every message (Lucene's English stop set).
STOP_WORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
        "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
        "these", "they", "this", "to", "was", "will", "with",
    }
)  # fmt: skip
_WORD = re.compile(r"\w+")
# IndexOptionsConflict / IndexKeySpecsConflict: a text index exists already, so $text works.
_INDEX_EXISTS_CODES = frozenset({85, 86})


def search_terms(text: str | None) -> list[str]:
    """Normalised, distinct words of `text`: lowercase, accents stripped, stop words dropped.

    "Café au LAIT, café!" -> ["cafe", "au", "lait"]. Single characters are dropped too.
    """
    if not text:
        return []
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    terms: dict[str, None] = {}
    for word in _WORD.findall(plain):
        if len(word) < 2 or word in STOP_WORDS:
            continue
        terms.setdefault(word[:MAX_TERM_LENGTH], None)
        if len(terms) == MAX_TERMS:
            break
    return list(terms)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A matching message and its rank (matched terms, or the `$text` score)."""

    message: Message
    score: float


@dataclass(slots=True)
class _TextSupport:
    supported: bool | None = None  # None: not found out yet
    ready: set[str] = field(default_factory=set)  # physical collections with the text index


_TEXT_SUPPORT: weakref.WeakKeyDictionary[DataLayer, _TextSupport] = weakref.WeakKeyDictionary()

_RANK = [("_score", -1), ("created_at", -1), ("_id", -1)]


class MessageSearchRepository(Repository[Message]):
    """Keyword search over the scope's live messages (soft-deleted ones never match)."""

    document_type = Message

    use_text_index: ClassVar[bool] = True
    """Set False in a subclass to always use the portable keyword index."""

    async def search(
        self,
        query: str,
        *,
        conversation_id: PydanticObjectId | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> Page[SearchHit]:
        """Messages containing any word of `query`, best match first, then newest.

        Raises:
            DocumentValidationError: the query has no searchable word, or a bad limit/cursor.
        """
        check_limit(limit, maximum=100)
        terms = search_terms(query)
        if not terms:
            raise DocumentValidationError(
                f"search query {query!r} has no searchable word", fields=("query",)
            )
        match: dict[str, Any]
        score: Any
        if await self.text_search_ready():
            match = {"$text": {"$search": " ".join(terms)}}
            score = {"$meta": "textScore"}
        else:
            match = {"terms": {"$in": terms}}
            score = {"$size": {"$setIntersection": ["$terms", terms]}}
        if conversation_id is not None:
            match["conversation_id"] = conversation_id
        pipeline: list[Mapping[str, Any]] = [{"$match": match}, {"$addFields": {"_score": score}}]
        shape = query_shape("search", _RANK, {"terms": terms, "in": conversation_id})
        if after is not None:
            pipeline.append(
                {"$match": keyset_after(_RANK, decode_cursor(after, shape, len(_RANK)))}
            )
        pipeline += [{"$sort": dict(_RANK)}, {"$limit": limit + 1}]
        collection = self.collection()
        with self._errors(collection):
            raws = await (await collection.aggregate(pipeline)).to_list(limit + 1)
        hits = [SearchHit(self._load(raw), float(raw["_score"])) for raw in raws[:limit]]
        next_cursor = None
        if len(raws) > limit:
            last = raws[limit - 1]
            next_cursor = encode_cursor([last[name] for name, _ in _RANK], shape)
        return Page(hits, next_cursor)

    async def text_search_ready(self) -> bool:
        """Whether `$text` serves searches of the scope's messages collection.

        The first call per layer finds out whether the server has text indexes by creating
        one; the answer is kept for the layer's lifetime.
        """
        if not self.use_text_index:
            return False
        support = _TEXT_SUPPORT.setdefault(self.layer, _TextSupport())
        if support.supported is False:
            return False
        database, name = self.collection().full_name.split(".", 1)
        physical = self.layer.unguarded_collection(
            database, name, why="index builds (DDL) are not tenant operations"
        )
        if physical.full_name in support.ready:
            return True
        with translate_driver_errors(document_type=Message):
            try:
                # Outside any transaction (no session): index builds cannot run inside one.
                await physical.create_index(
                    [("tenant_id", 1), ("text", "text")],
                    name=TEXT_INDEX_NAME,
                    default_language="none",  # no stemming: tenants write any language
                )
            except OperationFailure as exc:
                if exc.code not in _INDEX_EXISTS_CODES:
                    support.supported = False
                    return False
        support.supported = True
        support.ready.add(physical.full_name)
        return True

    @staticmethod
    def text_search_known(layer: DataLayer) -> bool | None:
        """What the layer found out about text indexes: True, False, or None (not tried)."""
        support = _TEXT_SUPPORT.get(layer)
        return None if support is None else support.supported
