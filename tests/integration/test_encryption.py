"""Signal-style keys: public keys only, and a one-time prekey reaches at most one requester."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from beanie import PydanticObjectId

from caas_data import DataLayer, DocumentValidationError, NotFoundError, tenant_scope
from caas_data.documents.base import utcnow
from caas_data.repositories.saas.encryption import (
    MAX_ONE_TIME_PREKEYS,
    PrekeyBundleRepository,
    UserKeyRepository,
)

from .conftest import MODEL_TIERS as TIERS
from .conftest import raw_collection

MODELS = ["shared", "pro", "enterprise"]


def key(n: int) -> bytes:
    """A distinct, well-formed 32-byte public key."""
    return bytes([n % 251 + 1]) * 16 + n.to_bytes(16, "big")


def one_time(start: int, count: int) -> list[dict[str, object]]:
    return [{"key_id": i, "public_key": key(1000 + i)} for i in range(start, start + count)]


async def publish_device(
    layer: DataLayer, user: PydanticObjectId, device: str = "phone", prekeys: int = 0
) -> None:
    await layer.repo(UserKeyRepository).publish(user, device, key(1), registration_id=4242)
    bundles = layer.repo(PrekeyBundleRepository)
    await bundles.set_signed_prekey(
        user, device, key_id=7, public_key=b"\x05" + key(2), signature=bytes(range(64))
    )
    if prekeys:
        await bundles.publish_one_time_prekeys(user, device, one_time(1, prekeys))


@pytest.mark.parametrize("model", MODELS)
async def test_published_keys_are_stored_raw_in_the_tenants_place(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    user = PydanticObjectId()
    async with tenant_scope(tenant):
        await publish_device(caas_layer, user, prekeys=3)
        claim = await caas_layer.repo(PrekeyBundleRepository).claim(user, "phone")
    assert claim.identity_key == key(1) and claim.registration_id == 4242
    assert claim.signed_prekey.key_id == 7 and claim.signed_prekey.public_key == key(2)
    assert claim.one_time_prekey is not None and claim.one_time_prekey.key_id == 1
    assert claim.one_time_prekey.public_key == key(1001)
    assert (claim.remaining, claim.low_supply) == (2, True)
    stored_key = await raw_collection(caas_layer, tenant, TIERS[model], "user_keys").find_one(
        {"tenant_id": tenant}
    )
    assert stored_key is not None and stored_key["identity_key"] == key(1)
    assert stored_key["tenant_id"] == tenant
    bundle = await raw_collection(caas_layer, tenant, TIERS[model], "prekey_bundles").find_one(
        {"tenant_id": tenant}
    )
    assert bundle is not None and bundle["tenant_id"] == tenant
    assert [k["claimed_at"] is not None for k in bundle["one_time_prekeys"]] == [True, False, False]


@pytest.mark.parametrize("model", MODELS)
async def test_fifty_concurrent_claims_over_thirty_keys_hand_each_out_once(
    caas_layer: DataLayer, caas_tenant: Callable[..., Awaitable[str]], model: str
) -> None:
    tenant = await caas_tenant(tier=TIERS[model])  # one tenant, not three: this test repeats
    owner = PydanticObjectId()
    requesters = [PydanticObjectId() for _ in range(50)]
    async with tenant_scope(tenant):
        await publish_device(caas_layer, owner, prekeys=30)
        bundles = caas_layer.repo(PrekeyBundleRepository)
        claims = await asyncio.gather(*(bundles.claim(owner, "phone", actor=r) for r in requesters))
        remaining = await bundles.count_one_time_prekeys(owner, "phone")
    handed = [c.one_time_prekey.key_id for c in claims if c.one_time_prekey is not None]
    assert sorted(handed) == list(range(1, 31))  # all 30 keys, none twice
    assert sum(1 for c in claims if c.one_time_prekey is None) == 20
    assert all(c.signed_prekey.key_id == 7 for c in claims)  # the rest still get a bundle
    assert remaining == 0 and all(c.low_supply for c in claims if c.one_time_prekey is None)
    stored = await raw_collection(caas_layer, tenant, TIERS[model], "prekey_bundles").find_one(
        {"tenant_id": tenant}
    )
    assert stored is not None
    claimed = stored["one_time_prekeys"]
    assert len({k["claim_token"] for k in claimed}) == 30
    by_key = {
        c.one_time_prekey.key_id: r
        for c, r in zip(claims, requesters, strict=True)
        if c.one_time_prekey is not None
    }
    assert {k["key_id"]: k["claimed_by"] for k in claimed} == by_key


async def test_low_supply_is_reported_below_the_threshold(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    user = PydanticObjectId()
    async with tenant_scope(pro_tenant):
        await publish_device(caas_layer, user, prekeys=4)
        bundles = caas_layer.repo(PrekeyBundleRepository)
        assert await bundles.count_one_time_prekeys(user, "phone") == 4
        flags = [
            (c.remaining, c.low_supply)
            for c in [await bundles.claim(user, "phone", low_supply_threshold=3) for _ in range(5)]
        ]
        assert flags == [(3, False), (2, True), (1, True), (0, True), (0, True)]
        assert await bundles.publish_one_time_prekeys(user, "phone", one_time(100, 5)) == 5


async def test_a_claim_that_cannot_be_served_consumes_nothing(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    user = PydanticObjectId()
    async with tenant_scope(shared_tenant):
        bundles = caas_layer.repo(PrekeyBundleRepository)
        with pytest.raises(NotFoundError, match="no identity key"):
            await bundles.claim(user, "phone")
        await caas_layer.repo(UserKeyRepository).publish(user, "phone", key(1))
        await bundles.publish_one_time_prekeys(user, "phone", one_time(1, 3))
        with pytest.raises(NotFoundError, match="no signed prekey"):
            await bundles.claim(user, "phone")
        assert await bundles.count_one_time_prekeys(user, "phone") == 3
        assert await bundles.count_one_time_prekeys(user, "tablet") == 0


@pytest.mark.parametrize("model", MODELS)
async def test_private_material_is_refused_and_nothing_stored(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    user = PydanticObjectId()
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEIA==\n-----END PRIVATE KEY-----"
    async with tenant_scope(model_tenant):
        keys = caas_layer.repo(UserKeyRepository)
        bundles = caas_layer.repo(PrekeyBundleRepository)
        with pytest.raises(DocumentValidationError) as caught:
            await keys.publish(user, "phone", pem)
        assert caught.value.fields == ("identity_key",) and "private" in str(caught.value)
        with pytest.raises(DocumentValidationError, match="Ed25519 private key"):
            await keys.publish(user, "phone", bytes(range(64)))
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "d": "BBBB"}
        with pytest.raises(DocumentValidationError, match="private JSON Web Key"):
            await keys.publish(user, "phone", jwk)
        with pytest.raises(DocumentValidationError) as caught:
            await keys.create(
                {"user_id": user, "device_id": "d", "identity_key": key(1), "private_key": key(2)}
            )
        assert caught.value.fields == ("private_key",)
        with pytest.raises(DocumentValidationError) as caught:
            await bundles.publish_one_time_prekeys(
                user, "phone", [{"key_id": 1, "public_key": key(3), "privateKey": key(4)}]
            )
        assert caught.value.fields == ("one_time_prekeys.0.privateKey",)
        with pytest.raises(DocumentValidationError) as caught:
            await bundles.publish_one_time_prekeys(
                user, "phone", [*one_time(1, 2), {"key_id": 9, "public_key": key(5)[:31]}]
            )
        assert caught.value.fields == ("one_time_prekeys.2.public_key",)
        with pytest.raises(DocumentValidationError) as caught:
            await bundles.set_signed_prekey(
                user, "phone", key_id=1, public_key=key(6), signature=b"too short"
            )
        assert caught.value.fields == ("signed_prekey.signature",)
        assert await keys.count() == 0 and await bundles.count() == 0


async def test_prekey_batches_are_checked(caas_layer: DataLayer, enterprise_tenant: str) -> None:
    user = PydanticObjectId()
    async with tenant_scope(enterprise_tenant):
        bundles = caas_layer.repo(PrekeyBundleRepository)
        with pytest.raises(DocumentValidationError, match="between 1 and 100"):
            await bundles.publish_one_time_prekeys(user, "phone", [])
        with pytest.raises(DocumentValidationError, match=r"repeated in the batch: \[2\]"):
            await bundles.publish_one_time_prekeys(user, "phone", one_time(1, 2) + one_time(2, 1))
        assert await bundles.publish_one_time_prekeys(user, "phone", one_time(1, 3)) == 3
        with pytest.raises(DocumentValidationError, match=r"already used on this device: \[3\]"):
            await bundles.publish_one_time_prekeys(user, "phone", one_time(3, 2))
        for start in range(10, MAX_ONE_TIME_PREKEYS - 100, 100):
            await bundles.publish_one_time_prekeys(user, "phone", one_time(start, 100))
        held = await bundles.count_one_time_prekeys(user, "phone")
        with pytest.raises(DocumentValidationError, match="at most"):
            await bundles.publish_one_time_prekeys(user, "phone", one_time(5000, 100))
        assert await bundles.count_one_time_prekeys(user, "phone") == held


async def test_long_claimed_prekeys_are_pruned_on_upload(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    user = PydanticObjectId()
    async with tenant_scope(shared_tenant):
        await publish_device(caas_layer, user, prekeys=3)
        bundles = caas_layer.repo(PrekeyBundleRepository)
        await bundles.claim(user, "phone")
        await bundles.claim(user, "phone")
        # Age the first claim past the hour a claimed key is kept.
        await bundles.collection().update_one(
            {"user_id": user, "one_time_prekeys.key_id": 1},
            {"$set": {"one_time_prekeys.$.claimed_at": utcnow() - timedelta(hours=2)}},
        )
        await bundles.publish_one_time_prekeys(user, "phone", one_time(10, 1))
        bundle = await bundles.find_one({"user_id": user})
    assert bundle is not None
    assert [(k.key_id, k.claimed_at is not None) for k in bundle.one_time_prekeys] == [
        (2, True),
        (3, False),
        (10, False),
    ]


async def test_a_new_identity_key_drops_the_old_prekeys(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    user = PydanticObjectId()
    async with tenant_scope(pro_tenant):
        keys = caas_layer.repo(UserKeyRepository)
        bundles = caas_layer.repo(PrekeyBundleRepository)
        await publish_device(caas_layer, user, prekeys=2)
        same = await keys.publish(user, "phone", base64.b64encode(key(1)).decode())
        assert same.identity_key == key(1) and await bundles.count() == 1
        changed = await keys.publish(user, "phone", key(99))
        assert changed.identity_key == key(99) and await keys.count() == 1
        assert await bundles.count() == 0  # signed by the old identity: unusable
        with pytest.raises(NotFoundError):
            await bundles.claim(user, "phone")


async def test_devices_are_claimed_together_and_removed_together(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    user = PydanticObjectId()
    async with tenant_scope(enterprise_tenant):
        await publish_device(caas_layer, user, "phone", prekeys=2)
        await publish_device(caas_layer, user, "laptop", prekeys=1)
        keys = caas_layer.repo(UserKeyRepository)
        await keys.publish(user, "watch", key(5))  # no prekeys yet: skipped
        bundles = caas_layer.repo(PrekeyBundleRepository)
        claims = await bundles.claim_all_devices(user)
        assert sorted(c.device_id for c in claims) == ["laptop", "phone"]
        assert all(c.one_time_prekey is not None for c in claims)
        assert await keys.delete_by_device(user, "phone") is True
        assert await keys.delete_by_device(user, "phone") is False
        assert [k.device_id for k in await keys.list_by_user(user)] == ["laptop", "watch"]
        assert await bundles.count_one_time_prekeys(user, "phone") == 0
        with pytest.raises(NotFoundError):
            await bundles.claim_all_devices(PydanticObjectId())
