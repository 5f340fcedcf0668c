"""Field encryption with one data key per tenant, in the three isolation models.

Checked with a raw client: what is stored is ciphertext (BSON Binary subtype 6) under the
tenant's own key, and erasing that key makes it unreadable, in this process at once and in
another within the TTL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from bson.binary import Binary
from pymongo.asynchronous.encryption import AsyncClientEncryption
from pymongo.errors import EncryptionError

from caas_data import (
    ConfigurationError,
    DataLayer,
    EncryptionOptions,
    FieldEncryption,
    Repository,
    TenantDocument,
    TenantKeyErased,
    TenantMismatch,
    Tier,
    UnsafeOperation,
    tenant_scope,
)
from caas_data.saas import User, UserDeviceRepository, UserRepository
from caas_data.tenancy.field_encryption import ciphertext_key_id
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases, new_tenant_id
from tests.integration.conftest import MODEL_TIERS, raw_collection

MASTER_KEY = os.urandom(96)


class Contact(TenantDocument):
    """A test document: email looked up by equality, phone never."""

    caas_encrypted_fields: ClassVar[dict[str, FieldEncryption | str]] = {
        "email": "deterministic",
        "phone": "random",
    }

    name: str
    email: str | None = None
    phone: str | None = None

    class Settings:
        name = "enc_contacts"


class ContactRepository(Repository[Contact]):
    document_type = Contact


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enc_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    """A layer that encrypts, personal fields included, with one tenant per model."""
    layer = await connect_for_tests(
        caas_server.uri,
        documents=[Contact],
        encryption=EncryptionOptions.local(MASTER_KEY, personal_fields=True),
    )
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enc_tenants(enc_layer: DataLayer) -> dict[str, str]:
    made = {}
    for model, tier in MODEL_TIERS.items():
        made[model] = new_tenant_id(f"enc-{model}")
        await enc_layer.tenants.provision(made[model], tier=tier)
    return made


def _raw(layer: DataLayer, tenant_id: str, model: str, name: str) -> Any:
    return raw_collection(layer, tenant_id, MODEL_TIERS[model], name)


def _is_ciphertext(value: Any) -> bool:
    return isinstance(value, Binary) and value.subtype == 6


@pytest.mark.parametrize("model", list(MODEL_TIERS))
async def test_fields_stored_as_ciphertext_and_read_back_on_every_path(
    enc_layer: DataLayer, enc_tenants: dict[str, str], model: str
) -> None:
    tenant = enc_tenants[model]
    async with tenant_scope(tenant, layer=enc_layer):
        contacts = enc_layer.repo(ContactRepository)
        ada = await contacts.create({"name": "Ada", "email": "ada@x.io", "phone": "+1 555"})
        bo = Contact(name="Bo", email="bo@x.io", phone="+1 666")
        await bo.insert()  # Beanie's instance API
        key = await enc_layer.encryption.key_id(tenant)

    raw = await _raw(enc_layer, tenant, model, "enc_contacts").find_one({"_id": ada.id})
    assert raw is not None and raw["name"] == "Ada"
    assert _is_ciphertext(raw["email"]) and _is_ciphertext(raw["phone"])
    assert ciphertext_key_id(raw["email"]) == key
    assert b"ada@x.io" not in bytes(raw["email"]) and b"555" not in bytes(raw["phone"])

    async with tenant_scope(tenant, layer=enc_layer):
        got = await contacts.get(ada.id)
        assert (got.email, got.phone) == ("ada@x.io", "+1 555")
        # Equality lookups on the deterministic field, through the repository and Beanie.
        page = await contacts.find({"email": "bo@x.io"})
        assert [c.name for c in page.items] == ["Bo"]
        found = await Contact.find(Contact.email == "ada@x.io").to_list()
        assert [(c.name, c.phone) for c in found] == [("Ada", "+1 555")]
        assert await Contact.find_one(Contact.email == "bo@x.io") is not None
        in_list = await Contact.find({"email": {"$in": ["ada@x.io", "bo@x.io"]}}).count()
        assert in_list == 2
        assert await Contact.find({"email": {"$ne": "ada@x.io"}}).count() == 1
        # Writes through update operators and save() are encrypted too.
        await Contact.find_one(Contact.email == "bo@x.io").set({Contact.phone: "+1 777"})
        ada = await contacts.update(ada, email="ada@new.io")
        bo_doc = await Contact.find_one(Contact.name == "Bo")
        assert bo_doc is not None and bo_doc.phone == "+1 777"
        bo_doc.email = "bo@new.io"
        await bo_doc.save()
        assert await Contact.find(Contact.email == "ada@x.io").count() == 0
        assert (await contacts.get(ada.id)).email == "ada@new.io"
        # Aggregations decrypt whatever ciphertext they return.
        rows = await (
            await Contact.get_pymongo_collection().aggregate(
                [
                    {"$sort": {"name": 1}},
                    {"$match": {"email": "bo@new.io"}},
                    {"$project": {"email": 1, "phone": 1}},
                ]
            )
        ).to_list()
        assert [(r["email"], r["phone"]) for r in rows] == [("bo@new.io", "+1 777")]

    stored = await _raw(enc_layer, tenant, model, "enc_contacts").find({}).to_list()
    assert len(stored) == 2
    assert all(_is_ciphertext(d["email"]) and _is_ciphertext(d["phone"]) for d in stored)


async def test_what_cannot_be_evaluated_on_ciphertext_is_refused(
    enc_layer: DataLayer, enc_tenants: dict[str, str]
) -> None:
    async with tenant_scope(enc_tenants["shared"], layer=enc_layer):
        contacts = enc_layer.repo(ContactRepository)
        carol = await contacts.create({"name": "Carol", "phone": "+44 1"})
        for query in (
            {"phone": "+44 1"},  # random: no equality
            {"email": {"$regex": "^a"}},
            {"email": {"$gt": "a"}},
            {"email.domain": "x.io"},
        ):
            with pytest.raises(UnsafeOperation):
                await contacts.find(query)
        with pytest.raises(UnsafeOperation):
            await Contact.get_pymongo_collection().update_one(
                {"_id": carol.id}, {"$push": {"phone": "+44 2"}}
            )
        with pytest.raises(UnsafeOperation):
            await Contact.get_pymongo_collection().update_one(
                {"_id": carol.id}, {"$rename": {"name": "email"}}
            )
        # Null and presence stay queryable: "not set" is not encrypted.
        assert await Contact.find({"name": "Carol", "email": None}).count() == 1
        assert await Contact.find({"name": "Carol", "phone": {"$exists": True}}).count() == 1
        with pytest.raises(UnsafeOperation):  # ciphertext is never passed through as a value
            await Contact.get_pymongo_collection().insert_one(
                {"name": "Dan", "email": Binary(b"\x01" + bytes(40), 6)}
            )


async def test_personal_fields_of_shipped_documents_when_the_layer_asks(
    enc_layer: DataLayer,
    enc_tenants: dict[str, str],
    caas_layer: DataLayer,
    tenants: Any,
    caas_server: ServerHandle,
) -> None:
    tenant = enc_tenants["pro"]
    async with tenant_scope(tenant, layer=enc_layer):
        users = enc_layer.repo(UserRepository)
        ada = await users.create({"external_id": "u-1", "display_name": "Ada", "email": "a@x.io"})
        devices = enc_layer.repo(UserDeviceRepository)
        await devices.register(ada.id, "d-1", platform="ios", push_token="tok-secret")
        assert [u.id for u in await User.find(User.email == "a@x.io").to_list()] == [ada.id]
        targets = await devices.list_push_targets([ada.id])
        assert [d.push_token for d in targets] == ["tok-secret"]
    raw_user = await _raw(enc_layer, tenant, "pro", "users").find_one({"_id": ada.id})
    raw_device = await _raw(enc_layer, tenant, "pro", "user_devices").find_one({})
    assert _is_ciphertext(raw_user["email"]) and _is_ciphertext(raw_device["push_token"])

    # Off by default: the session's layer stores them as they are, and refuses a class whose
    # fields must be encrypted rather than store them in plain text.
    async with tenant_scope(tenants.shared, layer=caas_layer):
        plain = await caas_layer.repo(UserRepository).create(
            {"external_id": "u-2", "display_name": "Bo", "email": "b@x.io"}
        )
        with pytest.raises(ConfigurationError, match="not registered"):
            caas_layer.collection(Contact)
    plain_layer = await connect_for_tests(
        caas_server.uri, documents=[Contact], database_prefix=caas_layer.prefix
    )
    try:
        async with tenant_scope(tenants.shared, layer=plain_layer):
            with pytest.raises(ConfigurationError, match="encrypted fields"):
                plain_layer.collection(Contact)
    finally:
        await plain_layer.close()
    raw_plain = await raw_collection(caas_layer, tenants.shared, Tier.FREE, "users").find_one(
        {"_id": plain.id}
    )
    assert raw_plain["email"] == "b@x.io"


async def test_another_tenants_key_cannot_decrypt(
    enc_layer: DataLayer, enc_tenants: dict[str, str]
) -> None:
    owner, other = enc_tenants["shared"], enc_tenants["enterprise"]
    async with tenant_scope(owner, layer=enc_layer):
        secret = await enc_layer.repo(ContactRepository).create(
            {"name": "Eve", "email": "eve@x.io"}
        )
    async with tenant_scope(other, layer=enc_layer):
        await enc_layer.repo(ContactRepository).create({"name": "Mal", "email": "mal@x.io"})
        other_key = await enc_layer.encryption.key_id(other)
    stolen = (await _raw(enc_layer, owner, "shared", "enc_contacts").find_one({"_id": secret.id}))[
        "email"
    ]
    assert other_key is not None and ciphertext_key_id(stolen) != other_key

    # The bytes copied into the other tenant's row (a leaked backup, say) are refused there.
    await _raw(enc_layer, other, "enterprise", "enc_contacts").update_one(
        {"name": "Mal"}, {"$set": {"email": stolen}}
    )
    async with tenant_scope(other, layer=enc_layer):
        with pytest.raises(TenantKeyErased) as refused:
            await Contact.find_one(Contact.name == "Mal")
        assert other in str(refused.value)

    # And the other tenant's key, given the same bytes, cannot decrypt them (HMAC fails).
    forged = Binary(bytes(stolen[:1]) + other_key.bytes + bytes(stolen[17:]), 6)
    raw_encryption = AsyncClientEncryption(
        {"local": {"key": MASTER_KEY}},
        enc_layer.encryption.key_vault_namespace,
        enc_layer.client,
        enc_layer.client.codec_options,
    )
    try:
        assert await raw_encryption.decrypt(stolen) == "eve@x.io"  # the owner's key can
        with pytest.raises(EncryptionError):
            await raw_encryption.decrypt(forged)
    finally:
        await raw_encryption.close()


@pytest.mark.parametrize("model", list(MODEL_TIERS))
async def test_erasing_a_key_shreds_the_tenants_data_here_and_in_other_processes(
    enc_layer: DataLayer, caas_server: ServerHandle, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    tenant = new_tenant_id("shred")
    await enc_layer.tenants.provision(tenant, tier=MODEL_TIERS[model])
    async with tenant_scope(tenant, layer=enc_layer):
        gone = await enc_layer.repo(ContactRepository).create(
            {"name": "Gone", "email": "g@x.io", "phone": "+1"}
        )
    # A second layer on the same databases: what another process of the app would have,
    # with a short TTL so the test waits little.
    monkeypatch.setenv("CAAS_TENANT_CACHE_TTL_SECONDS", "0.5")
    other = await connect_for_tests(
        caas_server.uri,
        documents=[Contact],
        database_prefix=enc_layer.prefix,
        encryption=EncryptionOptions.local(MASTER_KEY),
    )
    try:
        async with tenant_scope(tenant, layer=other):
            assert (await other.repo(ContactRepository).get(gone.id)).phone == "+1"

        async with tenant_scope(tenant, layer=enc_layer):
            with pytest.raises(TenantMismatch):  # an operator operation, not a tenant's
                await enc_layer.encryption.erase_key(tenant)
        assert await enc_layer.encryption.erase_key(tenant) == 1

        # This process: unreadable at once, with an error naming the tenant.
        async with tenant_scope(tenant, layer=enc_layer):
            with pytest.raises(TenantKeyErased, match=tenant):
                await enc_layer.repo(ContactRepository).get(gone.id)
            with pytest.raises(TenantKeyErased):
                await Contact.find(Contact.name == "Gone").to_list()
        # The other process: within its TTL (0.5 s here, 5 s by default) at the latest.
        await asyncio.sleep(0.6)
        async with tenant_scope(tenant, layer=other):
            with pytest.raises(TenantKeyErased, match=tenant):
                await other.repo(ContactRepository).get(gone.id)

        # A fresh ClientEncryption cannot decrypt the stored bytes either: the key is gone.
        raw = await _raw(enc_layer, tenant, model, "enc_contacts").find_one({"_id": gone.id})
        fresh = AsyncClientEncryption(
            {"local": {"key": MASTER_KEY}},
            enc_layer.encryption.key_vault_namespace,
            enc_layer.client,
            enc_layer.client.codec_options,
        )
        try:
            with pytest.raises(EncryptionError):
                await fresh.decrypt(raw["phone"])
        finally:
            await fresh.close()

        # New writes get a new key; what was written before stays unreadable.
        async with tenant_scope(tenant, layer=enc_layer):
            contacts = enc_layer.repo(ContactRepository)
            new = await contacts.create({"name": "New", "email": "n@x.io"})
            assert (await contacts.get(new.id)).email == "n@x.io"
            with pytest.raises(TenantKeyErased):
                await contacts.get(gone.id)
        # Deprovisioning erases the tenant's key too (backups of its data die with it).
        assert await enc_layer.tenants.deprovision(tenant, actor="test")
        assert await enc_layer.encryption.key_id(tenant) is None
    finally:
        await other.close()


async def test_change_streams_and_distinct_return_plain_values(
    enc_layer: DataLayer, enc_tenants: dict[str, str]
) -> None:
    async with tenant_scope(enc_tenants["shared"], layer=enc_layer):
        collection = enc_layer.collection(Contact)
        stream = await collection.watch()
        async with stream:
            await collection.insert_one({"name": "Watched", "email": "w@x.io", "phone": "+9"})
            change = await asyncio.wait_for(stream.next(), timeout=20)
        assert change["operationType"] == "insert"
        assert (change["fullDocument"]["email"], change["fullDocument"]["phone"]) == (
            "w@x.io",
            "+9",
        )
        assert "w@x.io" in await collection.distinct("email")
