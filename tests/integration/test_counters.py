"""Counters hand out each number once, without gaps, under concurrency and in transactions."""

from __future__ import annotations

import asyncio

import pytest

from caas_data import DataLayer, DocumentValidationError, tenant_scope
from caas_data.repositories.counters import CounterRepository, OwnedCounterRepository

from .conftest import Tenants


@pytest.mark.parametrize("model", ["shared", "pro", "enterprise"])
async def test_fifty_concurrent_allocations_are_unique_and_gap_free(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant):
        counters = caas_layer.repo(CounterRepository)
        numbers = await asyncio.gather(*(counters.allocate("conv:1") for _ in range(50)))
        assert sorted(numbers) == list(range(1, 51))
        assert await counters.current("conv:1") == 50
        assert await counters.allocate("conv:1", count=5) == 55
        assert await counters.current("other") == 0


async def test_counters_are_per_tenant(caas_layer: DataLayer, tenants: Tenants) -> None:
    for tenant in tenants.all:
        async with tenant_scope(tenant):
            assert await caas_layer.repo(CounterRepository).allocate("k") == 1
            assert await caas_layer.repo(OwnedCounterRepository).allocate("k") == 1


async def test_aborted_transaction_gives_numbers_back(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        counters = caas_layer.repo(OwnedCounterRepository)
        assert await counters.allocate("invoice") == 1
        with pytest.raises(RuntimeError):
            async with caas_layer.unit_of_work():
                assert await counters.allocate("invoice") == 2
                raise RuntimeError("abort")
        assert await counters.allocate("invoice") == 2


async def test_bad_allocation_requests_raise(caas_layer: DataLayer, pro_tenant: str) -> None:
    async with tenant_scope(pro_tenant):
        counters = caas_layer.repo(CounterRepository)
        with pytest.raises(DocumentValidationError):
            await counters.allocate("k", count=0)
        with pytest.raises(DocumentValidationError):
            await counters.allocate("")
