"""A document to store is encoded once, by the guard; its bytes tell if it holds a reference.

Every new document and every replacement must pass the reference check (`references.py`): a
walk of the whole document in Python, ~12 us for a 6 KB document, about what encoding it
costs. The driver encodes it anyway; the guard encodes it itself instead and sends the bytes
as they are (a `RawBSONDocument`, which the driver does not encode again). A reference is
stored as a sub-document whose first key is `$ref`, so a document whose bytes never hold
`$ref` followed by the end of a key holds no reference and needs no walk; bytes that do (a
reference, or a value that happens to contain those bytes) take the walk, and are encoded
again if it changed anything. A false alarm costs a walk; a reference can never pass unseen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

__all__ = ["encode_new_document", "encode_replacement", "raw_codec_options"]

_MARK = b"$"  # memchr: most documents hold no "$" at all
_REF_KEY = b"$ref\x00"
_EMPTY_DOCUMENT_SIZE = 5  # int32 length + terminating NUL


class _Sent(RawBSONDocument):
    """The bytes to send, as the driver takes them (a `RawBSONDocument` it does not encode).

    The driver asks a replacement whether it is empty before sending it; a `RawBSONDocument`
    answers by decoding itself whole (27 objects for the benchmark's 6 KB document, more than
    the walk this module saves). The bytes answer it: an empty document is 5 bytes.
    """

    __slots__ = ()

    def __bool__(self) -> bool:
        return len(self.raw) > _EMPTY_DOCUMENT_SIZE


def raw_codec_options(codec_options: CodecOptions[Any]) -> CodecOptions[Any]:
    """A collection's codec options, for the `RawBSONDocument` it sends (listeners decode it)."""
    return codec_options.with_options(document_class=RawBSONDocument)


def encode_new_document(
    document: dict[str, Any],
    codec_options: CodecOptions[Any],
    raw_options: CodecOptions[Any],
    references: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[RawBSONDocument, Any]:
    """`document` (a guarded copy) as the bytes to send, and its `_id` (given one if missing).

    `references` is the guard's reference check (it returns the document, or a copy naming
    logical collections, or raises); `raw_options` come from `raw_codec_options`.
    """
    if "_id" not in document:
        document["_id"] = ObjectId()  # as the driver does, before the bytes exist
    # A plain RawBSONDocument: the driver's checks of its exact type skip an ABC lookup.
    raw = RawBSONDocument(_checked_bytes(document, codec_options, references), raw_options)
    return raw, document["_id"]


def encode_replacement(
    document: dict[str, Any],
    codec_options: CodecOptions[Any],
    raw_options: CodecOptions[Any],
    references: Callable[[dict[str, Any]], dict[str, Any]],
) -> RawBSONDocument:
    """A replacement (guarded) as the bytes to send, checked like a new document."""
    return _Sent(_checked_bytes(document, codec_options, references), raw_options)


def _checked_bytes(
    document: dict[str, Any],
    codec_options: CodecOptions[Any],
    references: Callable[[dict[str, Any]], dict[str, Any]],
) -> bytes:
    """`document` encoded, walked by `references` only if the bytes may hold a reference."""
    raw = bson.encode(document, codec_options=codec_options)
    if _MARK in raw and _REF_KEY in raw:
        checked = references(document)
        if checked is not document:
            raw = bson.encode(checked, codec_options=codec_options)
    return raw
