"""The guard's answers to the attacks of issue 10, in every isolation model.

Each test attacks tenant B from tenant A's scope through the public API (handles, cursors,
Beanie's API on platform documents, update operators on layer-owned fields, look-alike
values, `$graphLookup`) and checks B's data with a raw client afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from caas_data import (
    CaasDataError,
    ConfigurationError,
    DataLayer,
    NotFoundError,
    RepositoryError,
    TenantContextMissing,
    TenantDocument,
    TenantMismatch,
    Tier,
    UnsafeOperation,
    system_scope,
    tenant_scope,
)
from caas_data.documents.billing import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Plan,
    Subscription,
    UsageRecord,
)
from caas_data.documents.platform import ApiKey, PlatformAdmin, SaasClient
from caas_data.repositories.billing.invoices import InvoiceRepository
from caas_data.repositories.platform.api_keys import ApiKeyRepository
from caas_data.repositories.saas.users import UserRepository
from caas_data.saas import User
from caas_data.testing import Factories, ServerHandle
from caas_data.testing.helpers import connect_for_tests, drop_prefix_databases, new_tenant_id

from .conftest import MODEL_TIERS, raw_collection

MODELS = list(MODEL_TIERS)


@pytest.fixture
async def pair(caas_layer: DataLayer, model: str) -> tuple[str, str]:
    """Attacker A (in the test's model) and victim B (shared model), each with three users."""
    a, b = new_tenant_id("att"), new_tenant_id("vic")
    await caas_layer.tenants.provision(a, tier=MODEL_TIERS[model])
    await caas_layer.tenants.provision(b, tier=Tier.FREE)
    for tenant in (a, b):
        async with tenant_scope(tenant):
            await caas_layer.collection(User).insert_many(
                [
                    {"external_id": f"u{i}", "display_name": tenant, "boss": f"u{i + 1}"}
                    for i in range(3)
                ]
            )
    return a, b


def users_of(layer: DataLayer, tenant: str, model: str) -> AsyncCollection[Any]:
    return raw_collection(layer, tenant, MODEL_TIERS[model], "users")


async def victim_rows(layer: DataLayer, b: str) -> list[dict[str, Any]]:
    raw = users_of(layer, b, "shared")
    rows = await raw.find({"tenant_id": b}, sort=[("_id", 1)]).to_list()
    entry = await layer.client[f"{layer.prefix}_platform"]["saas_clients"].find_one(
        {"tenant_id": b}
    )
    return [*rows, entry or {}]


# -- 1. handles and cursors serve only their scope -------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_a_handle_kept_past_its_scope_is_refused(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, b = pair
    before = await victim_rows(caas_layer, b)
    async with tenant_scope(a):
        handles = [caas_layer.collection(User), User.get_pymongo_collection()]
        cursor = handles[0].find({})
    for handle in handles:
        with pytest.raises(TenantContextMissing):
            await handle.find_one({})
        with pytest.raises(TenantContextMissing):
            await handle.update_many({}, {"$set": {"display_name": "x"}})
        async with tenant_scope(b):
            with pytest.raises(TenantMismatch):
                await handle.find({}).to_list()
            with pytest.raises(TenantMismatch):
                await handle.insert_one({"external_id": "planted", "display_name": "x"})
            with pytest.raises(TenantMismatch):
                await handle.delete_many({})
        async with system_scope():
            with pytest.raises(TenantMismatch):
                await handle.count_documents({})
    async with tenant_scope(b):
        with pytest.raises(TenantMismatch):
            await cursor.to_list()
    assert await victim_rows(caas_layer, b) == before


@pytest.mark.parametrize("model", MODELS)
async def test_a_cursor_is_checked_on_every_fetch(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, b = pair
    async with tenant_scope(a):
        cursor = caas_layer.collection(User).find({}, batch_size=1)
        first = await cursor.next()
        assert first["tenant_id"] == a
    async with tenant_scope(b):
        with pytest.raises(TenantMismatch):
            await cursor.next()
    with pytest.raises(TenantContextMissing):
        await cursor.next()


@pytest.mark.parametrize("model", MODELS)
async def test_no_raw_collection_behind_the_handle(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        users = caas_layer.collection(User)
        for name in ("physical", "_collection_", "database", "drop", "create_index", "rename"):
            with pytest.raises(UnsafeOperation):
                getattr(users, name)
        with pytest.raises(UnsafeOperation):
            users.find({}).rewind  # noqa: B018 - attribute access is the attack


@pytest.mark.parametrize("model", MODELS)
async def test_cursor_errors_are_translated(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        with pytest.raises(RepositoryError):
            await caas_layer.collection(User).find({"n": {"$nonsense": 1}}).to_list()
        with pytest.raises(RepositoryError):
            async for _ in User.find({"n": {"$nonsense": 1}}):
                pass


# -- 2. platform documents from a tenant scope --------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_the_directory_is_read_only_and_own_row_only(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, b = pair
    before = await victim_rows(caas_layer, b)
    async with tenant_scope(a):
        with pytest.raises(TenantMismatch):
            await SaasClient.find_one(SaasClient.tenant_id == b)
        assert await SaasClient.find_one({"name": b}) is None
        assert [c.tenant_id for c in await SaasClient.find_all().to_list()] == [a]
        own = await SaasClient.find_one(SaasClient.tenant_id == a)
        assert own is not None
        with pytest.raises(UnsafeOperation):
            await SaasClient.find(SaasClient.tenant_id == a).update(
                {"$set": {"status": "suspended", "placement.collection_prefix": "x_"}}
            )
        with pytest.raises(CaasDataError):
            await SaasClient.find_one(SaasClient.tenant_id == b).update(
                {"$set": {"status": "suspended"}}
            )
        with pytest.raises(UnsafeOperation):
            await own.delete()
        with pytest.raises(UnsafeOperation):
            await SaasClient.find_all().delete()
        with pytest.raises(CaasDataError):
            await SaasClient(
                tenant_id=b, name="b", tier=Tier.FREE, placement={"database": "x"}
            ).insert()
    assert await victim_rows(caas_layer, b) == before
    async with tenant_scope(b):  # still routed to its own data
        assert await caas_layer.collection(User).count_documents({}) == 3


@pytest.mark.parametrize("model", MODELS)
async def test_admins_are_invisible_and_plans_read_only(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        with pytest.raises(TenantMismatch):
            await PlatformAdmin.find_all().to_list()
        with pytest.raises(CaasDataError):
            await caas_layer.collection(User).aggregate(
                [{"$lookup": {"from": "platform_admins", "pipeline": [], "as": "x"}}]
            )
        await Plan.find_all().to_list()  # the catalogue is readable
        with pytest.raises(UnsafeOperation):
            await Plan.find_all().update({"$set": {"price_cents": 0}})


# -- 5. $graphLookup does not depend on the server honouring restrictSearchWithMatch ------------


@pytest.mark.parametrize("model", ["shared"])
async def test_graph_lookup_output_keeps_only_the_tenant(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, b = pair
    async with tenant_scope(a):
        cursor = await caas_layer.collection(User).aggregate(
            [
                {"$match": {"external_id": "u0"}},
                {
                    "$graphLookup": {
                        "from": "users",
                        "startWith": "$boss",
                        "connectFromField": "boss",
                        "connectToField": "external_id",
                        "as": "chain",
                    }
                },
            ]
        )
        rows = await cursor.to_list()
    assert len(rows) == 1
    chain = rows[0]["chain"]
    assert {d["external_id"] for d in chain} == {"u1", "u2"}
    assert {d["tenant_id"] for d in chain} == {a}, "another tenant's documents in the walk"
    assert b not in repr(rows)


@pytest.mark.parametrize("model", ["shared"])
async def test_lookup_by_local_and_foreign_field_keeps_only_the_tenant(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    """The concise `$lookup` (localField/foreignField) also gets the tenant's pipeline."""
    a, b = pair
    async with tenant_scope(a):
        cursor = await caas_layer.collection(User).aggregate(
            [
                {"$match": {"external_id": "u0"}},
                {
                    "$lookup": {
                        "from": "users",
                        "localField": "boss",
                        "foreignField": "external_id",
                        "as": "bosses",
                    }
                },
            ]
        )
        rows = await cursor.to_list()
    assert [d["tenant_id"] for d in rows[0]["bosses"]] == [a]
    assert b not in repr(rows)


# -- 6. look-alike values -----------------------------------------------------------------------


class Liar(str):
    """A str that says it equals anything."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False


class ShiftyMapping(dict[str, Any]):
    """Shows the guard one set of keys, then the real ones."""

    def __init__(self, shown: dict[str, Any], real: dict[str, Any]) -> None:
        super().__init__(real)
        self._shown = shown

    def keys(self) -> Any:
        return self._shown.keys()

    def items(self) -> Any:
        return self._shown.items()


@pytest.mark.parametrize("model", MODELS)
async def test_look_alike_tenant_ids_are_refused(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, b = pair
    before = await victim_rows(caas_layer, b)
    async with tenant_scope(a):
        users = caas_layer.collection(User)
        with pytest.raises(TenantMismatch):
            await users.insert_one({"external_id": "x", "display_name": "x", "tenant_id": Liar(b)})
        with pytest.raises(TenantMismatch):
            await users.find({"tenant_id": Liar(b)}).to_list()
        with pytest.raises(TenantMismatch):
            await users.update_many({}, {"$set": {"tenant_id": Liar(b)}})
        shifty = ShiftyMapping(
            {"external_id": "y", "display_name": "y"},
            {"external_id": "y", "display_name": "y", "tenant_id": b},
        )
        with pytest.raises(TenantMismatch):
            await users.insert_one(shifty)
        with pytest.raises(UnsafeOperation):
            await users.find_one({1: "x"})
        with pytest.raises(UnsafeOperation):
            await users.distinct(1)  # type: ignore[arg-type]
    assert await victim_rows(caas_layer, b) == before


# -- 7. fields the layer owns ---------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_layer_owned_fields_cannot_be_written(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        users = caas_layer.collection(User)
        user = await User.find_one(User.external_id == "u0")
        assert user is not None
        await user.delete()
        stored = await users.including_deleted().find_one({"_id": user.id})
        attacks: list[Any] = [
            {"$set": {"__v": 0}},
            {"$inc": {"__v": -5}},
            {"$set": {"deleted_at": None, "deleted_by": None}},
            {"$unset": {"deleted_at": ""}},
            {"$set": {"created_at": datetime(2000, 1, 1, tzinfo=UTC)}},
            {"$currentDate": {"created_at": True}},
            {"$max": {"schema_version": 99}},
            {"$rename": {"display_name": "__v"}},
            [{"$set": {"deleted_at": None}}],
        ]
        for attack in attacks:
            with contextlib.suppress(UnsafeOperation):
                await users.including_deleted().update_many({"_id": user.id}, attack)
            with contextlib.suppress(UnsafeOperation):
                await User.find({"_id": user.id, "deleted_at": {"$ne": None}}).update(attack)
        after = await users.including_deleted().find_one({"_id": user.id})
        assert after is not None and stored is not None
        for name in ("__v", "created_at", "deleted_at", "deleted_by", "schema_version"):
            assert after.get(name) == stored.get(name), name
        # the named way still works
        restored = await caas_layer.repo(UserRepository).restore(user.id)
        assert restored.deleted_at is None and restored.version == stored["__v"] + 1


@pytest.mark.parametrize("model", MODELS)
async def test_a_stale_save_through_beanie_update_is_refused(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        users = caas_layer.collection(User)
        first = await users.find_one({"external_id": "u1"})
        assert first is not None
        version = first["__v"]
        result = await users.update_one({"_id": first["_id"]}, {"$set": {"__v": version}})
        assert result.matched_count == 1
        stale = await users.update_one(
            {"_id": first["_id"]}, {"$set": {"__v": version, "display_name": "stale"}}
        )
        assert stale.matched_count == 0
        stored = await users.find_one({"_id": first["_id"]})
        assert stored is not None
        assert stored["__v"] == version + 1 and stored["display_name"] != "stale"


# -- 8. invoices keep their invariants on every path --------------------------------------------


@pytest.mark.parametrize("model", ["shared", "enterprise"])
async def test_invoice_numbers_only_come_from_issue(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        repo = caas_layer.repo(InvoiceRepository)
        draft = await repo.draft(lines=[InvoiceLine(description="x", unit_amount_cents=5)])
        with pytest.raises(CaasDataError):
            await repo.update_many({}, {"status": "issued", "number": 7})
        with pytest.raises(UnsafeOperation):
            await Invoice.find(Invoice.id == draft.id).update(
                {"$set": {"status": "issued", "number": 7}}
            )
        with pytest.raises(UnsafeOperation):
            await Invoice(
                status=InvoiceStatus.ISSUED, number=8, lines=[], issued_at=datetime.now(UTC)
            ).insert()
        issued = await repo.issue(draft.id)
        assert issued.number == 1
        # an issued invoice no longer changes through the general API
        result = await caas_layer.collection(Invoice).update_one(
            {"_id": issued.id}, {"$set": {"currency": "EUR"}}
        )
        assert result.matched_count == 0
        assert (await repo.get(issued.id)).currency == "USD"
        paid = await repo.mark_paid(issued.id)
        assert paid.status is InvoiceStatus.PAID


@pytest.mark.parametrize("model", MODELS)
async def test_a_revoked_key_stays_revoked_on_every_path(
    caas_layer: DataLayer, pair: tuple[str, str], model: str
) -> None:
    a, _ = pair
    keys = caas_layer.repo(ApiKeyRepository)
    async with tenant_scope(a):
        issued = await keys.issue("ci", scopes=["messages"])
        await keys.revoke(issued.key.id)
        attacks: list[Any] = [
            {"$set": {"revoked_at": None}},
            {"$unset": {"revoked_at": ""}},
            {"$set": {"scopes": ["admin"]}},
            {"$set": {"key_hash": "0" * 64}},
            {"$set": {"expires_at": datetime(2100, 1, 1, tzinfo=UTC)}},
        ]
        for attack in attacks:
            with pytest.raises(UnsafeOperation):
                await ApiKey.find(ApiKey.id == issued.key.id).update(attack)
            with pytest.raises(UnsafeOperation):
                await caas_layer.collection(ApiKey).update_many({}, attack)
        stored = await keys.get(issued.key.id)
        stored.revoked_at = None
        with pytest.raises(CaasDataError):
            await keys.save(stored)
    with pytest.raises(NotFoundError):
        await keys.authenticate(issued.secret)


@pytest.mark.parametrize("model", ["shared", "pro"])
async def test_billing_rows_change_only_through_billing(
    caas_layer: DataLayer, pair: tuple[str, str], model: str, caas_factories: Factories
) -> None:
    a, _ = pair
    async with tenant_scope(a):
        subscription = await caas_factories.subscription()
        usage = await caas_factories.usage_record()
        for attack in (
            {"$set": {"tier": "enterprise", "plan_code": "free-forever"}},
            {"$set": {"status": "canceled"}},
        ):
            with pytest.raises(UnsafeOperation):
                await Subscription.find(Subscription.id == subscription.id).update(attack)
        with pytest.raises(UnsafeOperation):
            await caas_layer.collection(UsageRecord).update_many({}, {"$set": {"quantity": 0}})
        with pytest.raises(UnsafeOperation):
            await caas_layer.collection(UsageRecord).update_many({}, {"$inc": {"quantity": -1}})
        stored = await caas_layer.collection(UsageRecord).find_one({"_id": usage.id})
        assert stored is not None and stored["quantity"] == usage.quantity
        fresh = await Subscription.get(subscription.id)
        assert fresh is not None and fresh.tier == subscription.tier


# -- 9. Beanie's cache is keyed by scope ---------------------------------------------------


class Cached(TenantDocument):
    label: str = "x"

    class Settings:
        name = "cached_things"
        use_cache = True
        cache_capacity = 10


@pytest.fixture
async def cache_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    layer = await connect_for_tests(caas_server.uri, documents=[Cached])
    try:
        yield layer
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


@pytest.mark.parametrize("model", MODELS)
async def test_beanies_cache_serves_only_the_scope_that_filled_it(
    cache_layer: DataLayer, model: str
) -> None:
    a, b = new_tenant_id("ca"), new_tenant_id("cb")
    await cache_layer.tenants.provision(a, tier=MODEL_TIERS[model])
    await cache_layer.tenants.provision(b, tier=Tier.FREE)
    async with tenant_scope(a, layer=cache_layer):
        await Cached(label="secret of a").insert()
        assert [c.label for c in await Cached.find(Cached.label != "").to_list()] == ["secret of a"]
        assert await Cached.find_one(Cached.label != "") is not None  # now cached for A
    async with tenant_scope(b, layer=cache_layer):
        assert await Cached.find(Cached.label != "").to_list() == []
        assert await Cached.find_one(Cached.label != "") is None


# -- 10. the escape hatch states its reason ----------------------------------------------------


async def test_the_escape_hatch_needs_a_reason(caas_layer: DataLayer) -> None:
    with pytest.raises(ConfigurationError):
        caas_layer.unguarded_collection("x", "y", why=" ")
    assert not hasattr(caas_layer, "physical_collection")
    assert not hasattr(caas_layer, "platform_collection")
