"""The CI profile of the load suite: correctness only (the numbers are `make load`'s).

Hot group: many senders into one conversation and as many over as many conversations;
afterwards every acknowledged message is stored exactly once and seqs are 1..N. Then mixed
reads and writes from concurrent tasks over tenants of all three isolation models, checked
from a raw client: no document of another tenant, no read of another tenant's data.
"""

from __future__ import annotations

from caas_data import DataLayer, Tier
from caas_data.testing import new_tenant_id
from caas_data.testing.load import hot_versus_spread, mixed_tenants
from caas_data.testing.load_checks import check_acknowledged


async def test_hot_group_sends_are_gap_free_and_exactly_once(caas_layer: DataLayer) -> None:
    tenant = new_tenant_id("hot")
    await caas_layer.tenants.provision(tenant, tier=Tier.PRO)
    hot, spread = await hot_versus_spread(caas_layer, tenant, senders=12, sends_each=3)
    assert len(hot.acks) == len(spread.acks) == 36
    assert sorted(a.seq for a in hot.acks) == list(range(1, 37))
    assert await check_acknowledged(caas_layer, hot.acks + spread.acks) == []


async def test_mixed_load_over_three_models_keeps_tenants_apart(caas_layer: DataLayer) -> None:
    tenants = []
    for tier in (Tier.FREE, Tier.STARTER, Tier.PRO, Tier.ENTERPRISE):
        tenants.append(new_tenant_id("mix"))
        await caas_layer.tenants.provision(tenants[-1], tier=tier)
    result = await mixed_tenants(caas_layer, tenants, tasks=40, operations_each=4)
    assert result.foreign_reads == []
    assert len(result.acks) > 0
    assert await check_acknowledged(caas_layer, result.acks, tenants=tenants) == []
