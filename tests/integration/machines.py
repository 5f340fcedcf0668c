"""What the isolation state machines share: a layer on its own loop, tenants of every tier.

Hypothesis runs stateful tests synchronously, so each machine drives its own event loop and a
layer connected on it (the session's layer belongs to pytest-asyncio's loop).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar, TypeVar

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from caas_data import DataLayer, Tier
from caas_data.testing import ServerHandle, connect_for_tests, drop_prefix_databases, new_tenant_id

T = TypeVar("T")
V = TypeVar("V")
# Two shared tenants (the filter is what keeps them apart), one PRO, one Enterprise.
TIERS = (Tier.FREE, Tier.STARTER, Tier.PRO, Tier.ENTERPRISE)


class LayerMachine(RuleBasedStateMachine):
    """Base of the machines: `run()` a coroutine on the machine's loop, fresh tenants."""

    layer: ClassVar[DataLayer]
    loop: ClassVar[asyncio.AbstractEventLoop]
    counter = itertools.count()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def new_tenants(self, stem: str) -> dict[str, Tier]:
        """Fresh tenant ids, one per tier of TIERS, provisioned; id -> tier."""
        tiers = {new_tenant_id(f"{stem}{i}"): tier for i, tier in enumerate(TIERS)}

        async def go() -> None:
            for tenant, tier in tiers.items():
                await self.layer.tenants.provision(tenant, tier=tier)

        self.run(go())
        return tiers


async def each_tenant(
    check: Callable[[str, V], Awaitable[None]], per_tenant: Mapping[str, V]
) -> None:
    """Run an invariant's check for every tenant at once (its reads are independent)."""
    await asyncio.gather(*(check(tenant, value) for tenant, value in per_tenant.items()))


def run_machine(
    machine: type[LayerMachine], server: ServerHandle, *, examples_share: float = 1.0
) -> None:
    """Run `machine` against `server` on a layer of its own, dropped afterwards.

    `examples_share` scales the profile's `max_examples` (at least 4) for costlier machines.
    """
    loop = asyncio.new_event_loop()
    try:
        layer = loop.run_until_complete(connect_for_tests(server.uri))
        machine.layer = layer
        machine.loop = loop
        try:
            profile = settings()
            examples = max(4, int(profile.max_examples * examples_share))
            run_state_machine_as_test(machine, settings=settings(profile, max_examples=examples))
        finally:
            loop.run_until_complete(drop_prefix_databases(layer))
            loop.run_until_complete(layer.close())
    finally:
        loop.close()
