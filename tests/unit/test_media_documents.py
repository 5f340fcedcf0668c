"""Media documents validate what an upload claims before anything is stored."""

from __future__ import annotations

import pytest
from beanie import PydanticObjectId
from pydantic import ValidationError

from caas_data.documents.saas.media import MediaFile, Post, normalize_mime_type

SHA = "ab" * 32


def file(**changes: object) -> MediaFile:
    fields: dict[str, object] = {
        "tenant_id": "t",
        "name": "photo.jpg",
        "mime_type": "image/jpeg",
        "size_bytes": 10,
        "sha256": SHA,
        "storage_key": "t/u/1",
        "uploader_id": PydanticObjectId(),
    }
    fields.update(changes)
    return MediaFile(**fields)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("image/png", "image/png"),
        ("Video/MP4", "video/mp4"),
        ("audio/ogg; codecs=opus", "audio/ogg"),
        ("text/plain;charset=UTF-8", "text/plain"),
        ("application/pdf", "application/pdf"),
        ("image/vnd.microsoft.icon", "image/vnd.microsoft.icon"),
    ],
)
def test_accepted_mime_types_are_stored_as_their_essence(given: str, stored: str) -> None:
    assert normalize_mime_type(given) == stored


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ("image", "type/subtype"),
        ("image/", "type/subtype"),
        ("/png", "type/subtype"),
        ("image/png/x", "type/subtype"),
        ("ima ge/png", "type/subtype"),
        ("application/x-msdownload", "not accepted"),
        ("text/html", "not accepted"),
        ("image/svg+xml", "script"),
    ],
)
def test_other_mime_types_are_refused(given: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        normalize_mime_type(given)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mime_type": "application/x-sh"}, "mime_type"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"size_bytes": -5}, "size_bytes"),
        ({"size_bytes": "10"}, "size_bytes"),
        ({"size_bytes": True}, "size_bytes"),
        ({"sha256": "xyz"}, "sha256"),
        ({"sha256": "ab" * 31}, "sha256"),
        ({"name": "../etc/passwd"}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": ".."}, "name"),
        ({"storage_key": ""}, "storage_key"),
    ],
)
def test_file_fields_are_validated(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        file(**changes)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_checksum_is_lower_cased() -> None:
    assert file(sha256=SHA.upper()).sha256 == SHA


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"kind": "reel", "file_ids": []}, "exactly one video"),
        ({"kind": "reel", "file_ids": [PydanticObjectId(), PydanticObjectId()]}, "exactly one"),
        ({"caption": "   "}, "a caption or at least one file"),
        ({"file_ids": [PydanticObjectId()] * 2}, "only once"),
        ({"file_ids": [PydanticObjectId() for _ in range(11)]}, "at most 10"),
    ],
)
def test_post_shapes_are_checked_on_file_ids(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words) as caught:
        Post(tenant_id="t", author_id=PydanticObjectId(), **fields)
    assert caught.value.errors()[0]["loc"] == ("file_ids",)


def test_text_posts_and_single_file_reels_are_fine() -> None:
    assert Post(tenant_id="t", author_id=PydanticObjectId(), caption="hello").file_ids == []
    reel = Post(tenant_id="t", author_id=PydanticObjectId(), kind="reel", file_ids=[SHA[:24]])
    assert len(reel.file_ids) == 1
