"""Files, scans, posts and reels, media metadata: per tenant, validated, soft-deleted."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from beanie import PydanticObjectId

from caas_data import (
    DataLayer,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    tenant_scope,
)
from caas_data.documents.saas.media import MediaFile, PostKind, ScanStatus
from caas_data.documents.saas.settings import MIB
from caas_data.repositories.saas.media import (
    MediaFileRepository,
    MediaMetadataRepository,
    PostRepository,
)
from caas_data.repositories.saas.settings import TenantSettingsRepository

from .conftest import MODEL_TIERS as TIERS
from .conftest import Tenants, raw_collection

MODELS = ["shared", "pro", "enterprise"]
_numbers = itertools.count()


async def upload(
    layer: DataLayer, uploader: PydanticObjectId, mime: str = "image/jpeg", **changes: object
) -> MediaFile:
    n = next(_numbers)
    fields: dict[str, object] = {
        "name": f"file-{n}.bin",
        "mime_type": mime,
        "size_bytes": 1000 + n,
        "sha256": hashlib.sha256(str(n).encode()).hexdigest(),
        "storage_key": f"uploads/{uploader}/{n}",
        "uploader_id": uploader,
    }
    fields.update(changes)
    return await layer.repo(MediaFileRepository).register(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", MODELS)
async def test_files_are_registered_pending_and_stored_in_the_tenants_place(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    user = PydanticObjectId()
    async with tenant_scope(tenant):
        stored = await upload(caas_layer, user, "Image/PNG; charset=binary", sha256="AB" * 32)
        files = caas_layer.repo(MediaFileRepository)
        assert (await files.get(stored.id)).scan_status is ScanStatus.PENDING
        assert [f.id for f in await files.list_pending_scan()] == [stored.id]
    raw = await raw_collection(caas_layer, tenant, TIERS[model], "files").find_one(
        {"tenant_id": tenant}
    )
    assert raw is not None and raw["tenant_id"] == tenant
    assert (raw["mime_type"], raw["scan_status"]) == ("image/png", "pending")
    assert raw["sha256"] == "ab" * 32


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"mime_type": "application/x-msdownload"}, "mime_type"),
        ({"mime_type": "not a mime"}, "mime_type"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"size_bytes": 100 * MIB + 1}, "size_bytes"),
        ({"sha256": "00"}, "sha256"),
        ({"name": "a/b.txt"}, "name"),
    ],
)
async def test_bad_uploads_name_the_field_and_store_nothing(
    caas_layer: DataLayer, shared_tenant: str, changes: dict[str, object], field: str
) -> None:
    async with tenant_scope(shared_tenant):
        with pytest.raises(DocumentValidationError) as caught:
            await upload(caas_layer, PydanticObjectId(), **changes)
        assert caught.value.fields == (field,)
        assert await caas_layer.repo(MediaFileRepository).count(include_deleted=True) == 0


async def test_size_limit_comes_from_argument_then_tenant_settings(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    user = PydanticObjectId()
    async with tenant_scope(tenants.pro):
        with pytest.raises(DocumentValidationError, match="over the limit of 1000 bytes"):
            await upload(caas_layer, user, size_bytes=1001, max_bytes=1000)
        assert (await upload(caas_layer, user, size_bytes=1000, max_bytes=1000)).size_bytes == 1000
        with pytest.raises(DocumentValidationError) as caught:
            await upload(caas_layer, user, max_bytes=0)
        assert caught.value.fields == ("max_bytes",)
        await caas_layer.repo(TenantSettingsRepository).update_section(
            "limits", {"max_file_bytes": 5000}
        )
        with pytest.raises(DocumentValidationError, match="limit of 5000 bytes"):
            await upload(caas_layer, user, size_bytes=5001)
        assert (await upload(caas_layer, user, size_bytes=200 * MIB, max_bytes=300 * MIB)).id
    async with tenant_scope(tenants.enterprise):  # another tenant keeps the 100 MiB default
        assert (await upload(caas_layer, user, size_bytes=5001)).size_bytes == 5001


async def test_storage_keys_are_unique_per_tenant(caas_layer: DataLayer, tenants: Tenants) -> None:
    user = PydanticObjectId()
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            await upload(caas_layer, user, storage_key="same/key")
    async with tenant_scope(tenants.shared):
        with pytest.raises(DuplicateError):
            await upload(caas_layer, user, storage_key="same/key")


@pytest.mark.parametrize("model", MODELS)
async def test_scan_results_are_recorded(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant):
        files = caas_layer.repo(MediaFileRepository)
        first = await upload(caas_layer, PydanticObjectId())
        second = await upload(caas_layer, PydanticObjectId())
        clean = await files.set_scan_result(first.id, ScanStatus.CLEAN)
        assert clean.scan_status is ScanStatus.CLEAN and clean.scanned_at is not None
        assert clean.version == first.version + 1
        infected = await files.set_scan_result(str(second.id), "infected", detail="EICAR")
        assert (infected.scan_status, infected.scan_detail) == (ScanStatus.INFECTED, "EICAR")
        assert await files.list_pending_scan() == []
        with pytest.raises(DocumentValidationError) as caught:
            await files.set_scan_result(first.id, "pending")
        assert caught.value.fields == ("status",)
        with pytest.raises(DocumentValidationError):
            await files.set_scan_result(first.id, "sparkling")
        with pytest.raises(NotFoundError):
            await files.set_scan_result(PydanticObjectId(), "clean")


@pytest.mark.parametrize("model", MODELS)
async def test_files_and_posts_are_soft_deleted_and_restored(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    user = PydanticObjectId()
    async with tenant_scope(tenant):
        files = caas_layer.repo(MediaFileRepository)
        posts = caas_layer.repo(PostRepository)
        stored = await upload(caas_layer, user)
        post = await posts.publish(author_id=user, caption="hi", file_ids=[stored.id])
        await files.delete(stored.id, actor=user)
        await posts.delete(post.id, actor=user)
        assert await files.get_or_none(stored.id) is None
        assert (await posts.list_by_author(user)).items == []
        assert (await files.list_by_uploader(user)).items == []
        raw = await raw_collection(caas_layer, tenant, TIERS[model], "posts").find_one(
            {"tenant_id": tenant}
        )
        assert raw is not None and raw["deleted_by"] == user  # kept, marked
        await files.restore(stored.id)
        await posts.restore(post.id)
        assert [p.id for p in (await posts.list_by_author(user)).items] == [post.id]
        assert (await files.get(stored.id)).deleted_at is None


async def test_posts_only_show_the_authors_live_clean_files(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    author, other = PydanticObjectId(), PydanticObjectId()
    async with tenant_scope(pro_tenant):
        files = caas_layer.repo(MediaFileRepository)
        posts = caas_layer.repo(PostRepository)
        mine = await upload(caas_layer, author)
        theirs = await upload(caas_layer, other)
        bad = await upload(caas_layer, author)
        await files.set_scan_result(bad.id, "infected")
        gone = await upload(caas_layer, author)
        await files.delete(gone.id)
        with pytest.raises(DocumentValidationError) as caught:
            await posts.publish(author_id=author, file_ids=[mine.id, theirs.id, bad.id, gone.id])
        message = str(caught.value)
        assert caught.value.fields == ("file_ids",)
        assert f"{theirs.id} was uploaded by another user" in message
        assert f"{bad.id} is infected" in message
        assert f"{gone.id} does not exist or is deleted" in message
        assert str(mine.id) not in message
        assert await posts.count() == 0
        post = await posts.publish(author_id=author, file_ids=[mine.id], visibility="contacts")
        assert [p.id for p in await posts.list_by_file(mine.id)] == [post.id]
        assert (await posts.list_public()).items == []


@pytest.mark.parametrize("model", MODELS)
async def test_a_reel_is_exactly_one_video(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    user = PydanticObjectId()
    async with tenant_scope(model_tenant):
        posts = caas_layer.repo(PostRepository)
        video = await upload(caas_layer, user, "video/mp4")
        image = await upload(caas_layer, user, "image/png")
        with pytest.raises(DocumentValidationError, match="a reel needs a video file") as caught:
            await posts.publish(author_id=user, kind="reel", file_ids=[image.id])
        assert caught.value.fields == ("file_ids",)
        with pytest.raises(DocumentValidationError, match="exactly one video") as caught:
            await posts.publish(author_id=user, kind=PostKind.REEL, file_ids=[video.id, image.id])
        assert caught.value.fields == ("file_ids",)
        reel = await posts.publish(author_id=user, kind="reel", file_ids=[video.id], caption="!")
        post = await posts.publish(author_id=user, caption="text only")
        assert [p.id for p in (await posts.list_public(kind=PostKind.REEL)).items] == [reel.id]
        assert [p.id for p in (await posts.list_by_author(user)).items] == [post.id, reel.id]
        edited = await posts.edit(reel, caption="new caption")
        assert (edited.caption, edited.version) == ("new caption", 1)
        assert edited.edited_at is not None
        with pytest.raises(DocumentValidationError, match="a caption or at least one file"):
            await posts.edit(post, caption=" ")


@pytest.mark.parametrize("model", MODELS)
async def test_media_metadata_is_merged_per_file_and_purged_with_it(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    async with tenant_scope(tenant):
        files = caas_layer.repo(MediaFileRepository)
        metadata = caas_layer.repo(MediaMetadataRepository)
        video = await upload(caas_layer, PydanticObjectId(), "video/webm")
        other = await upload(caas_layer, PydanticObjectId(), "image/gif")
        await metadata.upsert_by_file(video.id, width=1080, height=1920, codec="vp9")
        merged = await metadata.upsert_by_file(
            video.id, duration_ms=15_000, thumbnail_key="thumbs/1"
        )
        assert (merged.width, merged.height, merged.duration_ms) == (1080, 1920, 15_000)
        assert (merged.codec, merged.thumbnail_key) == ("vp9", "thumbs/1")
        await metadata.upsert_by_file(other.id, width=10, height=10)
        assert set(await metadata.get_many_by_files([video.id, other.id])) == {video.id, other.id}
        with pytest.raises(DocumentValidationError) as caught:
            await metadata.upsert_by_file(video.id, width=0)
        assert caught.value.fields == ("width",)
        with pytest.raises(DocumentValidationError) as caught:
            await metadata.upsert_by_file(video.id, colour="blue")
        assert caught.value.fields == ("colour",)
        with pytest.raises(NotFoundError):
            await metadata.upsert_by_file(PydanticObjectId(), width=1)
        await files.purge(video.id)
        assert await metadata.get_by_file_or_none(video.id) is None
        assert await metadata.get_by_file_or_none(other.id) is not None
        assert await files.get_or_none(video.id, include_deleted=True) is None
    raw = raw_collection(caas_layer, tenant, TIERS[model], "media_metadata")
    assert await raw.count_documents({"tenant_id": tenant}) == 1
