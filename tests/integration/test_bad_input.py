"""Bad input fails loudly, with a clear error, and writes nothing."""

from __future__ import annotations

import pytest

import caas_data
from caas_data import (
    ConfigurationError,
    DataLayer,
    DocumentValidationError,
    InvalidTenantId,
    NotFoundError,
    TenantContextMissing,
    TenantMismatch,
    TenantNotFound,
    Tier,
    tenant_scope,
)
from caas_data.saas import User, UserRepository

from .conftest import Tenants, raw_collection


@pytest.mark.parametrize("tenant_id", ["Acme", "ac_me", "shared", "platform", "x", ""])
async def test_invalid_and_reserved_ids_raise_before_io(
    caas_layer: DataLayer, tenant_id: str
) -> None:
    with pytest.raises(InvalidTenantId):
        async with tenant_scope(tenant_id):
            pass
    with pytest.raises(InvalidTenantId):
        await caas_layer.tenants.provision(tenant_id, tier=Tier.FREE)
    assert (
        await caas_layer.client[f"{caas_layer.prefix}_platform"]["saas_clients"].count_documents(
            {"tenant_id": tenant_id}
        )
        == 0
    )


async def test_missing_scope_raises(caas_layer: DataLayer, shared_tenant: str) -> None:
    repo = caas_layer.repo(UserRepository)
    with pytest.raises(TenantContextMissing):
        await repo.count()
    with pytest.raises(TenantContextMissing):
        await User.find().to_list()
    with pytest.raises(TenantContextMissing):
        User(external_id="a", display_name="b")  # no tenant to stamp
    user = User(external_id="a", display_name="b", tenant_id=shared_tenant)
    with pytest.raises(TenantContextMissing):
        await user.insert()
    assert (
        await raw_collection(caas_layer, shared_tenant, Tier.FREE, "users").count_documents(
            {"tenant_id": shared_tenant}
        )
        == 0
    )


async def test_unknown_tenant_raises_at_first_operation(caas_layer: DataLayer) -> None:
    async with tenant_scope("nobody-here"):
        with pytest.raises(TenantNotFound):
            await caas_layer.repo(UserRepository).count()


async def test_nested_scope_for_another_tenant_raises(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    async with tenant_scope(tenants.shared):
        with pytest.raises(TenantMismatch):
            async with tenant_scope(tenants.pro):
                pass
        async with tenant_scope(tenants.shared):  # same tenant: fine
            assert await caas_layer.repo(UserRepository).count() == 0


async def test_document_of_another_tenant_is_refused(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    async with tenant_scope(tenants.shared):
        repo = caas_layer.repo(UserRepository)
        intruder = User(external_id="x", display_name="x", tenant_id=tenants.pro)
        with pytest.raises(TenantMismatch):
            await repo.create(intruder)
        with pytest.raises(TenantMismatch):
            await intruder.insert()
        with pytest.raises(TenantMismatch):
            await repo.create({"external_id": "y", "display_name": "y", "tenant_id": tenants.pro})
    for tier, tenant in ((Tier.FREE, tenants.shared), (Tier.PRO, tenants.pro)):
        assert (
            await raw_collection(caas_layer, tenant, tier, "users").count_documents(
                {"tenant_id": tenant}
            )
            == 0
        )


async def test_invalid_fields_name_the_field_and_write_nothing(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        repo = caas_layer.repo(UserRepository)
        with pytest.raises(DocumentValidationError) as caught:
            await repo.create({"external_id": "", "display_name": "ok", "email": "nope"})
        assert set(caught.value.fields) == {"external_id", "email"}
        assert "external_id" in str(caught.value)
        assert isinstance(caught.value, ValueError)
        user = await repo.create({"external_id": "ok", "display_name": "ok"})
        with pytest.raises(DocumentValidationError) as caught:
            await repo.update(user, display_name="")
        assert caught.value.fields == ("display_name",)
        with pytest.raises(DocumentValidationError, match="no field"):
            await repo.find({"no_such_field": 1})
        with pytest.raises(DocumentValidationError, match="invalid User id"):
            await repo.get("not-an-id")
        with pytest.raises(NotFoundError):
            await repo.get("0123456789abcdef01234567")
        assert (await repo.get(user.id)).display_name == "ok"
        assert await repo.count() == 1


async def test_connect_without_uri_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAAS_MONGODB_URI", raising=False)
    with pytest.raises(ConfigurationError, match="CAAS_MONGODB_URI"):
        await caas_data.connect()


async def test_connect_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, caas_server: caas_data.testing.ServerHandle
) -> None:
    monkeypatch.setenv("CAAS_MONGODB_URI", caas_server.uri)
    monkeypatch.setenv("CAAS_DATABASE_PREFIX", "envprefix")
    async with await caas_data.connect(database_prefix="argprefix") as layer:
        assert layer.prefix == "argprefix"  # argument beats environment
    async with await caas_data.connect() as layer:
        assert layer.prefix == "envprefix"
        await layer.client.drop_database("envprefix_platform")
    with pytest.raises(ConfigurationError, match="invalid settings"):
        await caas_data.connect(database_prefix="Bad Prefix")


async def test_an_empty_insert_many_is_the_layers_error_not_a_type_error(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        collection = caas_layer.collection(User)
        with pytest.raises(DocumentValidationError, match="at least one document") as caught:
            await collection.insert_many([])
        with pytest.raises(DocumentValidationError, match="at least one document"):
            await collection.insert_many(iter(()))
    assert caught.value.tenant_id == pro_tenant
