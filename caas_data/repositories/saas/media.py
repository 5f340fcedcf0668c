"""Media repositories: file metadata and its virus scan, posts and reels, media metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from beanie import PydanticObjectId
from pymongo import ReturnDocument

from caas_data.documents.base import utcnow
from caas_data.documents.saas.media import (
    MediaFile,
    MediaMetadata,
    Post,
    PostKind,
    PostVisibility,
    ScanStatus,
)
from caas_data.engine.transactions import transaction
from caas_data.errors import DocumentValidationError, NotFoundError
from caas_data.repositories.base import Page, Repository, check_int
from caas_data.repositories.saas.settings import TenantSettingsRepository

__all__ = ["MediaFileRepository", "MediaMetadataRepository", "PostRepository"]


class MediaFileRepository(Repository[MediaFile]):
    """Uploaded files: registered after the upload, then scanned, served, deleted."""

    document_type = MediaFile

    async def register(
        self,
        *,
        name: str,
        mime_type: str,
        size_bytes: int,
        sha256: str,
        storage_key: str,
        uploader_id: PydanticObjectId,
        conversation_id: PydanticObjectId | None = None,
        max_bytes: int | None = None,
    ) -> MediaFile:
        """Record an uploaded file (scan pending).

        `max_bytes` is the size limit; None uses the tenant's `limits.max_file_bytes`.

        Raises:
            DocumentValidationError: a field is invalid (MIME type not accepted, size not
                positive or over the limit, checksum not SHA-256 hex...); `fields` names it.
            DuplicateError: `storage_key` is already registered.
        """
        if max_bytes is not None:
            check_int("max_bytes", max_bytes, minimum=1, document_type=MediaFile)
        new = self._validate(
            {
                "name": name,
                "mime_type": mime_type,
                "size_bytes": size_bytes,
                "sha256": sha256,
                "storage_key": storage_key,
                "uploader_id": uploader_id,
                "conversation_id": conversation_id,
            }
        )
        if max_bytes is None:
            settings = await self.layer.repo(TenantSettingsRepository).get_settings()
            max_bytes = settings.limits.max_file_bytes
        if new.size_bytes > max_bytes:
            raise DocumentValidationError(
                f"size_bytes: {new.size_bytes} bytes is over the limit of {max_bytes} bytes",
                fields=("size_bytes",),
                document_type=MediaFile,
            )
        return await self.create(new)

    async def set_scan_result(
        self, file_id: Any, status: ScanStatus | str, *, detail: str | None = None
    ) -> MediaFile:
        """Record the virus scanner's verdict (also on a soft-deleted file).

        Raises:
            DocumentValidationError: `status` is not a verdict (pending is not one).
            NotFoundError: no such file.
        """
        try:
            verdict = ScanStatus(status)
        except ValueError:
            verdict = None
        if verdict is None or verdict is ScanStatus.PENDING:
            raise DocumentValidationError(
                f"status: a scan result is clean, infected or failed, not {status!r}",
                fields=("status",),
                document_type=MediaFile,
            )
        if detail is not None and (not isinstance(detail, str) or len(detail) > 500):
            raise DocumentValidationError(
                "detail: at most 500 characters", fields=("detail",), document_type=MediaFile
            )
        raw = await self.collection(include_deleted=True).find_one_and_update(
            {"_id": self._id(file_id)},
            {"$set": {"scan_status": verdict.value, "scan_detail": detail, "scanned_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            raise NotFoundError(f"file {file_id} not found", document_type=MediaFile)
        return self._load(raw)

    async def list_pending_scan(self, *, limit: int = 100) -> list[MediaFile]:
        """Files waiting for a scan, oldest first (for the scanner worker)."""
        page = await self.find({"scan_status": ScanStatus.PENDING}, sort="created_at", limit=limit)
        return page.items

    async def list_by_uploader(
        self, uploader_id: PydanticObjectId, *, after: str | None = None, limit: int = 50
    ) -> Page[MediaFile]:
        """A user's uploads, newest first."""
        return await self.find(
            {"uploader_id": uploader_id}, sort="-created_at", after=after, limit=limit
        )

    async def list_by_checksum(self, sha256: str) -> list[MediaFile]:
        """Live files with this content (to reuse a clean upload instead of storing it again)."""
        page = await self.find({"sha256": sha256.strip().lower()}, sort="-created_at", limit=100)
        return page.items

    async def purge(self, document_or_id: Any) -> None:
        """Delete the file record and its media metadata for good, in one transaction.

        Posts that referenced it keep the id (see `PostRepository.list_by_file`).
        """
        file_id = self._id(document_or_id)
        base_purge = super().purge
        metadata = self.layer.repo(MediaMetadataRepository)

        async def purge_both() -> None:
            await base_purge(file_id)
            await metadata.collection().delete_many({"file_id": file_id})

        await transaction(self.layer, purge_both)


class PostRepository(Repository[Post]):
    """Posts and reels; their files must be the author's own, live and not infected."""

    document_type = Post

    async def publish(
        self,
        *,
        author_id: PydanticObjectId,
        kind: PostKind | str = PostKind.POST,
        caption: str | None = None,
        file_ids: Sequence[PydanticObjectId] = (),
        visibility: PostVisibility | str = PostVisibility.PUBLIC,
        group_id: PydanticObjectId | None = None,
    ) -> Post:
        """Create a post (a caption and/or up to ten files) or a reel (exactly one video).

        Raises:
            DocumentValidationError: the shape is wrong for the kind, or a file is missing,
                deleted, someone else's, infected, or (for a reel) not a video.
        """
        post = self._validate(
            {
                "author_id": author_id,
                "kind": kind,
                "caption": caption,
                "file_ids": list(file_ids),
                "visibility": visibility,
                "group_id": group_id,
            }
        )
        await self._check_files(post)
        return await self.create(post)

    async def _check_files(self, post: Post) -> None:
        if not post.file_ids:
            return
        page = await self.layer.repo(MediaFileRepository).find(
            {"_id": {"$in": post.file_ids}}, limit=len(post.file_ids)
        )
        found = {f.id: f for f in page.items}
        problems = [f"{i} does not exist or is deleted" for i in post.file_ids if i not in found]
        for file in found.values():
            if file.uploader_id != post.author_id:
                problems.append(f"{file.id} was uploaded by another user")
            if file.scan_status is ScanStatus.INFECTED:
                problems.append(f"{file.id} is infected")
            if post.kind is PostKind.REEL and not file.is_video:
                problems.append(f"a reel needs a video file, {file.id} is {file.mime_type}")
        if problems:
            raise DocumentValidationError(
                "file_ids: " + "; ".join(problems), fields=("file_ids",), document_type=Post
            )

    async def edit(
        self,
        post: Post,
        *,
        caption: str | None = None,
        visibility: PostVisibility | str | None = None,
    ) -> Post:
        """Change the caption and/or visibility (version-checked, like `update`)."""
        changes: dict[str, Any] = {}
        if caption is not None:
            changes["caption"] = caption
        if visibility is not None:
            changes["visibility"] = visibility
        if not changes:
            raise DocumentValidationError("nothing to edit", fields=("caption", "visibility"))
        return await self.update(post, edited_at=utcnow(), **changes)

    async def list_by_author(
        self,
        author_id: PydanticObjectId,
        *,
        kind: PostKind | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> Page[Post]:
        """An author's posts (or reels), newest first."""
        return await self._newest({"author_id": author_id}, kind, after, limit)

    async def list_public(
        self, *, kind: PostKind | None = None, after: str | None = None, limit: int = 20
    ) -> Page[Post]:
        """Public posts (or reels) of the tenant, newest first."""
        return await self._newest({"visibility": PostVisibility.PUBLIC}, kind, after, limit)

    async def _newest(
        self, query: Mapping[str, Any], kind: PostKind | None, after: str | None, limit: int
    ) -> Page[Post]:
        filter_ = dict(query) if kind is None else {**query, "kind": PostKind(kind)}
        return await self.find(filter_, sort="-created_at", after=after, limit=limit)

    async def list_by_file(self, file_id: Any) -> list[Post]:
        """Live posts that show a file (e.g. to hide them once it is found infected)."""
        page = await self.find({"file_ids": self._id(file_id)}, limit=100)
        return page.items


class MediaMetadataRepository(Repository[MediaMetadata]):
    """What processing learned about files (one document per file)."""

    document_type = MediaMetadata

    async def upsert_by_file(self, file_id: Any, **fields: Any) -> MediaMetadata:
        """Set some metadata of a file, keeping what was recorded before (upsert).

        Raises:
            NotFoundError: the file does not exist (soft-deleted files still get metadata).
            DocumentValidationError: an unknown field or an invalid value.
        """
        target = self._id(file_id)
        if not fields:
            raise DocumentValidationError("no metadata given", document_type=MediaMetadata)
        for name in fields:
            if name in ("file_id", "id", "_id") or name not in MediaMetadata.model_fields:
                raise DocumentValidationError(
                    f"{name}: not a media metadata field",
                    fields=(name,),
                    document_type=MediaMetadata,
                )
        self._validate({"file_id": target, **fields})  # every value, before any I/O
        files = self.layer.repo(MediaFileRepository)
        if not await files.exists({"_id": target}, include_deleted=True):
            raise NotFoundError(f"file {target} not found", document_type=MediaFile)
        return await self.upsert({"file_id": target}, fields)

    async def get_by_file_or_none(self, file_id: Any) -> MediaMetadata | None:
        """The metadata of one file, or None if none was recorded."""
        return await self.find_one({"file_id": self._id(file_id)})

    async def get_many_by_files(
        self, file_ids: Sequence[Any]
    ) -> dict[PydanticObjectId, MediaMetadata]:
        """Metadata of several files (e.g. a post's), by file id; missing ones are left out."""
        ids = [self._id(i) for i in file_ids]
        if not ids:
            return {}
        page = await self.find({"file_id": {"$in": ids}}, limit=len(ids))
        return {m.file_id: m for m in page.items}
