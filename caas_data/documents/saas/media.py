"""Media domain (seed: saas/media): uploaded files, posts and reels, per-file media metadata.

The bytes live in object storage; `files` keeps what the platform needs to serve and police
them (type, size, checksum, where they are, whether the virus scan passed).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from beanie import PydanticObjectId
from pydantic import Field, ValidationInfo, field_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from caas_data.documents.base import SoftDeleteMixin, TenantDocument

__all__ = [
    "ALLOWED_MIME_FAMILIES",
    "ALLOWED_MIME_TYPES",
    "DOCUMENTS",
    "MAX_POST_FILES",
    "MediaFile",
    "MediaMetadata",
    "Post",
    "PostKind",
    "PostVisibility",
    "ScanStatus",
    "normalize_mime_type",
]

# RFC 6838 restricted-name: a letter or digit, then up to 126 of these characters.
_MIME_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MIME_RE = re.compile(rf"^({_MIME_NAME})/({_MIME_NAME})$")

ALLOWED_MIME_FAMILIES: Final = frozenset({"image", "video", "audio"})
ALLOWED_MIME_TYPES: Final = frozenset(
    {
        "application/pdf", "text/plain", "text/csv", "text/markdown", "application/json",
        "application/zip", "application/msword", "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)  # fmt: skip
# Inside an allowed family but able to run script in a browser that renders it inline.
_REFUSED_MIME_TYPES: Final = frozenset({"image/svg+xml"})

MAX_POST_FILES: Final = 10
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def normalize_mime_type(value: str) -> str:
    """The MIME essence (`type/subtype`, lower case) of an upload, if the platform accepts it.

    Parameters such as `; charset=utf-8` are dropped: serving decides them, not the upload.

    Raises:
        ValueError: malformed, or not an accepted type (pydantic reports it for the field).
    """
    essence = value.split(";", 1)[0].strip().lower()
    match = _MIME_RE.match(essence)
    if match is None:
        raise ValueError(f"{value!r} is not a MIME type of the form type/subtype")
    if essence in _REFUSED_MIME_TYPES:
        raise ValueError(f"{essence} is not accepted: it can carry script")
    if match.group(1) not in ALLOWED_MIME_FAMILIES and essence not in ALLOWED_MIME_TYPES:
        families = ", ".join(f"{f}/*" for f in sorted(ALLOWED_MIME_FAMILIES))
        raise ValueError(
            f"{essence} is not accepted (allowed: {families}, application/pdf, text/plain "
            "and common office documents)"
        )
    return essence


class ScanStatus(StrEnum):
    """Virus-scan state of a file; only clean files should be served to other users."""

    PENDING = "pending"
    CLEAN = "clean"
    INFECTED = "infected"
    FAILED = "failed"  # the scanner could not decide (e.g. encrypted archive)


class MediaFile(SoftDeleteMixin, TenantDocument):
    """An uploaded file's metadata; the content is in object storage at `storage_key`."""

    name: str = Field(min_length=1, max_length=255, description="Original file name.")
    mime_type: str = Field(max_length=255)
    size_bytes: int = Field(gt=0, strict=True)
    sha256: str = Field(description="Lower-case hex SHA-256 of the content.")
    storage_key: str = Field(min_length=1, max_length=1024)
    uploader_id: PydanticObjectId
    conversation_id: PydanticObjectId | None = Field(
        default=None, description="Where it was shared first, if in a conversation."
    )
    scan_status: ScanStatus = ScanStatus.PENDING
    scan_detail: str | None = Field(default=None, max_length=500)
    scanned_at: datetime | None = None

    class Settings:
        name = "files"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("storage_key", ASCENDING)],
                unique=True,
                name="tenant_storage_key_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("uploader_id", ASCENDING), ("created_at", DESCENDING)],
                name="tenant_uploader_created",
            ),
            IndexModel([("tenant_id", ASCENDING), ("sha256", ASCENDING)], name="tenant_sha256"),
            IndexModel(
                [("tenant_id", ASCENDING), ("scan_status", ASCENDING), ("created_at", ASCENDING)],
                name="tenant_scan_queue",
            ),
        ]

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or _CONTROL_RE.search(value):
            raise ValueError("a file name must not contain path separators or control characters")
        if value.strip() in ("", ".", ".."):
            raise ValueError("a file name must name a file")
        return value

    @field_validator("mime_type")
    @classmethod
    def _mime(cls, value: str) -> str:
        return normalize_mime_type(value)

    @field_validator("sha256")
    @classmethod
    def _checksum(cls, value: str) -> str:
        normalized = value.strip().lower()
        if not _SHA256_RE.match(normalized):
            raise ValueError("sha256 must be 64 hexadecimal characters")
        return normalized

    @property
    def is_video(self) -> bool:
        """True for video/* files (what a reel needs)."""
        return self.mime_type.startswith("video/")


class PostKind(StrEnum):
    """A feed post (text and up to ten media files) or a reel (exactly one video)."""

    POST = "post"
    REEL = "reel"


class PostVisibility(StrEnum):
    """Who may see a post."""

    PUBLIC = "public"
    CONTACTS = "contacts"
    PRIVATE = "private"


class Post(SoftDeleteMixin, TenantDocument):
    """A post or reel; media are referenced by file id, never embedded."""

    author_id: PydanticObjectId
    kind: PostKind = PostKind.POST
    caption: str | None = Field(default=None, max_length=2200)
    file_ids: list[PydanticObjectId] = Field(
        default_factory=list, max_length=MAX_POST_FILES, validate_default=True
    )
    visibility: PostVisibility = PostVisibility.PUBLIC
    group_id: PydanticObjectId | None = Field(default=None, description="Posted into a group.")
    edited_at: datetime | None = None

    class Settings:
        name = "posts"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("author_id", ASCENDING), ("created_at", DESCENDING)],
                name="tenant_author_created",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("kind", ASCENDING), ("created_at", DESCENDING)],
                name="tenant_kind_created",
            ),
            # Which posts show a file (before purging it, or when it turns out infected).
            IndexModel([("tenant_id", ASCENDING), ("file_ids", ASCENDING)], name="tenant_files"),
        ]

    @field_validator("file_ids")
    @classmethod
    def _files_fit_kind(
        cls, value: list[PydanticObjectId], info: ValidationInfo
    ) -> list[PydanticObjectId]:
        # Checked on file_ids (declared after kind and caption) so the error names a field.
        if len(set(value)) != len(value):
            raise ValueError("a file may appear only once in a post")
        kind = info.data.get("kind")
        if kind is PostKind.REEL and len(value) != 1:
            raise ValueError(f"a reel needs exactly one video file, got {len(value)}")
        if kind is PostKind.POST and not value and not (info.data.get("caption") or "").strip():
            raise ValueError("a post needs a caption or at least one file")
        return value


class MediaMetadata(TenantDocument):
    """What processing learned about one file: dimensions, duration, thumbnail..."""

    file_id: PydanticObjectId
    width: int | None = Field(default=None, ge=1, le=100_000)
    height: int | None = Field(default=None, ge=1, le=100_000)
    duration_ms: int | None = Field(default=None, ge=0)
    thumbnail_key: str | None = Field(default=None, min_length=1, max_length=1024)
    blurhash: str | None = Field(default=None, min_length=6, max_length=100)
    codec: str | None = Field(default=None, max_length=64)
    bitrate: int | None = Field(default=None, ge=1)
    page_count: int | None = Field(default=None, ge=1, description="Documents (PDF...).")
    extra: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "media_metadata"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("file_id", ASCENDING)],
                unique=True,
                name="tenant_file_unique",
            ),
        ]


DOCUMENTS: tuple[type[TenantDocument], ...] = (MediaFile, Post, MediaMetadata)
