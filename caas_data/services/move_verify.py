"""A tenant move's verification, split so that the write pause does not grow with the tenant.

Checksums are per document: SHA-256 over the document's BSON, computed the same way on both
sides and compared by `_id` (a missing or extra document is a mismatch too).

1. **Before the fence** (writers still writing), `compare_all` reads every document on both
   sides. The copy is only ever written by the move, so a document can differ only if the
   source changed it after the catch-up position P recorded just before this read (its event
   is in the stream after P), or if the copy is wrong. The differing ids are kept.
2. **Inside the fence**, the stream is drained from P until quiet (the ids it re-syncs), then
   `compare_ids` re-checks only those ids plus the ones that differed before, and `counts`
   compares the number of documents on both sides.

Why that proves the copy: a document not re-checked matched at step 1 and had no event after
P, so the source still holds what was read, and the copy, written only by re-syncs of
evented ids, still holds the same. A wrong copy of any document is caught at step 1 (kept for
step 2) or re-checked at step 2. The fenced work is proportional to the writes since P, not
to the tenant's size. A move resumed with the fence up (a crash) has no step 1 in memory: it
runs `compare_all` inside the fence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import bson
from pymongo.asynchronous.collection import AsyncCollection

__all__ = ["by_ids", "compare_all", "compare_ids", "counts"]

_IDS_PER_QUERY = 1000

Collection = AsyncCollection[dict[str, Any]]


def _key(document_id: Any) -> bytes:
    """A hashable, type-exact key of an `_id` (1 and 1.0 and "1" stay apart)."""
    return bson.encode({"_id": document_id})


def _fingerprint(document: dict[str, Any]) -> bytes:
    return hashlib.sha256(bson.encode(document)).digest()


async def _fingerprints(collection: Collection, query: dict[str, Any]) -> dict[bytes, bytes]:
    return {_key(doc["_id"]): _fingerprint(doc) async for doc in collection.find(query)}


def _differing(source: dict[bytes, bytes], target: dict[bytes, bytes]) -> list[Any]:
    keys = source.keys() | target.keys()
    return [bson.decode(k)["_id"] for k in keys if source.get(k) != target.get(k)]


async def compare_all(source: Collection, target: Collection, query: dict[str, Any]) -> list[Any]:
    """Every document on both sides; the `_id`s whose contents differ (or exist on one side)."""
    return _differing(await _fingerprints(source, query), await _fingerprints(target, query))


async def compare_ids(
    source: Collection, target: Collection, tenant_id: str, ids: Iterable[Any]
) -> list[Any]:
    """`compare_all` of one tenant's documents restricted to `ids`: those that still differ."""
    unique = list({_key(i): i for i in ids}.values())
    differing: list[Any] = []
    for start in range(0, len(unique), _IDS_PER_QUERY):
        chunk = unique[start : start + _IDS_PER_QUERY]
        differing += _differing(
            await _fingerprints_of(source, tenant_id, chunk),
            await _fingerprints_of(target, tenant_id, chunk),
        )
    return differing


async def _fingerprints_of(
    collection: Collection, tenant_id: str, ids: list[Any]
) -> dict[bytes, bytes]:
    return {_key(doc["_id"]): _fingerprint(doc) for doc in await by_ids(collection, tenant_id, ids)}


async def by_ids(collection: Collection, tenant_id: str, ids: list[Any]) -> list[dict[str, Any]]:
    """The tenant's documents among `ids`.

    The query names only `_id` (the tenant is checked here): with `tenant_id` beside the
    `$in`, servers may pick a tenant index and test every row of the tenant against the
    list (the embedded server took ~7 times longer).
    """
    found = await collection.find({"_id": {"$in": ids}}).to_list()
    return [doc for doc in found if doc.get("tenant_id") == tenant_id]


async def counts(source: Collection, target: Collection, query: dict[str, Any]) -> tuple[int, int]:
    """The number of documents matching `query` on each side."""
    return await source.count_documents(query), await target.count_documents(query)
