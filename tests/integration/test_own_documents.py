"""A service's own document type: refused until registered, then indexed like ours."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from pymongo import ASCENDING, IndexModel

from caas_data import (
    ConfigurationError,
    DataLayer,
    DuplicateError,
    TenantDocument,
    TenantMismatch,
    Tier,
    tenant_scope,
)
from caas_data.fastapi import caas_lifespan, get_layer
from caas_data.repositories.base import Repository
from caas_data.testing import ServerHandle
from caas_data.testing.helpers import (
    connect_for_tests,
    drop_prefix_databases,
    layer_for_tests,
    new_tenant_id,
)

from .conftest import MODEL_TIERS


class Ticket(TenantDocument):
    subject: str

    class Settings:
        name = "tickets"
        indexes = [
            IndexModel([("tenant_id", ASCENDING), ("subject", ASCENDING)], unique=True),
        ]


class TicketRepository(Repository[Ticket]):
    document_type = Ticket


async def test_an_unregistered_document_is_refused_at_first_use(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        attempts = (
            lambda: Ticket(subject="x").insert(),
            lambda: Ticket.find_all().to_list(),
            lambda: Ticket.find_one({}),
            lambda: caas_layer.repo(TicketRepository).create({"subject": "x"}),
        )
        for attempt in attempts:
            with pytest.raises(ConfigurationError, match="not registered"):
                await attempt()


@pytest.fixture
async def own_layer(caas_server: ServerHandle) -> AsyncIterator[DataLayer]:
    async with layer_for_tests(caas_server.uri, documents=[Ticket]) as layer:
        yield layer


@pytest.mark.parametrize("model", list(MODEL_TIERS))
async def test_a_registered_document_gets_its_unique_index_per_tenant(
    own_layer: DataLayer, model: str
) -> None:
    tenant = new_tenant_id("own")
    await own_layer.tenants.provision(tenant, tier=MODEL_TIERS[model])
    async with tenant_scope(tenant, layer=own_layer):
        tickets = own_layer.repo(TicketRepository)
        await tickets.create({"subject": "printer"})
        with pytest.raises(DuplicateError):
            await tickets.create({"subject": "printer"})
    other = new_tenant_id("own")
    await own_layer.tenants.provision(other, tier=Tier.FREE)
    async with tenant_scope(other, layer=own_layer):
        await own_layer.repo(TicketRepository).create({"subject": "printer"})  # per tenant


async def test_caas_lifespan_registers_the_services_documents(caas_server: ServerHandle) -> None:
    app = FastAPI()
    prefix = f"t{new_tenant_id('l').replace('-', '')[:10]}"
    lifespan = caas_lifespan(uri=caas_server.uri, database_prefix=prefix, documents=[Ticket])
    async with lifespan(app):
        layer = get_layer(type("Request", (), {"app": app})())  # type: ignore[arg-type]
        assert Ticket in layer.registry
        await drop_prefix_databases(layer)


@pytest.mark.parametrize("model", list(MODEL_TIERS))
async def test_sync_indexes_brings_a_new_document_to_existing_tenants(
    caas_server: ServerHandle, model: str
) -> None:
    """A class registered after a tenant exists: `layer.sync_indexes()` creates its indexes."""
    before = await connect_for_tests(caas_server.uri)
    tenant = new_tenant_id("late")
    try:
        await before.tenants.provision(tenant, tier=MODEL_TIERS[model])
        after = await connect_for_tests(
            caas_server.uri, database_prefix=before.prefix, documents=[Ticket]
        )
        try:
            reports = await after.sync_indexes()
            created = [r for r in reports if r.namespace.endswith("tickets")]
            assert created and all(r.created for r in created), reports
            async with tenant_scope(tenant, layer=after):
                tickets = after.repo(TicketRepository)
                await tickets.create({"subject": "printer"})
                with pytest.raises(DuplicateError):
                    await tickets.create({"subject": "printer"})
            assert not [r for r in await after.sync_indexes() if r.created]  # nothing left
            async with tenant_scope(tenant, layer=after):
                with pytest.raises(TenantMismatch):
                    await after.sync_indexes()  # an operator operation
        finally:
            await after.close()
    finally:
        await drop_prefix_databases(before)
        await before.close()
