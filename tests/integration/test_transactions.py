"""Units of work: one transaction, the tenant scope kept, transient errors retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from caas_data import DataLayer, current_tenant_id, tenant_scope
from caas_data.engine.sessions import current_session
from caas_data.engine.transactions import transaction
from caas_data.errors import RetryableError
from caas_data.repositories.saas.groups import GroupRepository
from caas_data.saas import User, UserRepository


async def test_commit_makes_all_writes_visible(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    async with tenant_scope(enterprise_tenant):
        repo = caas_layer.repo(UserRepository)
        async with caas_layer.unit_of_work() as uow:
            assert uow.session.in_transaction
            assert current_tenant_id() == enterprise_tenant
            await repo.create({"external_id": "a", "display_name": "a"})
            await User(external_id="b", display_name="b").insert()
        assert await repo.count() == 2


async def test_an_error_rolls_everything_back(caas_layer: DataLayer, shared_tenant: str) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        kept = await repo.create({"external_id": "k", "display_name": "k"})
        with pytest.raises(ValueError, match="boom"):
            async with caas_layer.unit_of_work():
                await repo.create({"external_id": "a", "display_name": "a"})
                await repo.update(kept, display_name="changed")
                raise ValueError("boom")
        assert await repo.count() == 1
        assert (await repo.get(kept.id)).display_name == "k"


async def test_nested_units_join_the_outer_transaction(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    async with tenant_scope(pro_tenant):
        repo = caas_layer.repo(UserRepository)
        with pytest.raises(RuntimeError):
            async with caas_layer.unit_of_work() as outer:
                async with caas_layer.unit_of_work() as inner:
                    assert inner.session is outer.session
                    await repo.create({"external_id": "n", "display_name": "n"})
                raise RuntimeError("abort outer")
        assert await repo.count() == 0


async def test_run_transaction_retries_write_conflicts(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        repo = caas_layer.repo(UserRepository)
        user = await repo.create({"external_id": "c", "display_name": "c", "metadata": {"n": 0}})
        attempts = 0

        async def increment() -> None:
            nonlocal attempts
            attempts += 1
            await repo.collection().update_one({"_id": user.id}, {"$inc": {"metadata.n": 1}})
            await asyncio.sleep(0.01)  # widen the window for a write conflict

        await asyncio.gather(*(caas_layer.run_transaction(increment) for _ in range(8)))
        stored = await repo.get(user.id)
        assert stored.metadata["n"] == 8
        assert stored.version == 8
        assert attempts > 8  # some attempts hit a write conflict and were re-run


def _transient() -> RetryableError:
    driver = OperationFailure("write conflict", code=112)
    driver._add_error_label("TransientTransactionError")
    return RetryableError("write conflict", driver_error=driver)


async def test_an_inner_body_joins_the_outer_transaction_and_runs_once(
    caas_layer: DataLayer, tenant: str
) -> None:
    """A transient conflict inside a joined body goes to the outer loop, which re-runs it all."""
    runs = {"outer": 0, "inner": 0}

    async def inner() -> None:
        runs["inner"] += 1
        session = current_session()
        assert session is not None and session.in_transaction
        if runs["inner"] == 1:
            raise _transient()
        await caas_layer.repo(UserRepository).create(
            {"external_id": f"u{runs['inner']}", "display_name": "u"}
        )

    async def outer() -> None:
        runs["outer"] += 1
        await transaction(caas_layer, inner, hot_key="hot")  # joins: no lock, no own retry

    async with tenant_scope(tenant):
        await transaction(caas_layer, outer)
        users = await caas_layer.repo(UserRepository).find()
    assert runs == {"outer": 2, "inner": 2}
    assert [u.external_id for u in users] == ["u2"]


async def test_a_joined_body_is_not_rerun_by_run_transaction(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    """What groups, encryption and media did: `run_transaction` inside a caller's unit of work."""
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1
        raise _transient()

    async with tenant_scope(shared_tenant):
        with pytest.raises(RetryableError):
            async with caas_layer.unit_of_work():
                await caas_layer.run_transaction(body)
    assert runs == 1


async def test_a_domain_write_joins_the_callers_transaction(
    caas_layer: DataLayer, tenant: str
) -> None:
    """A group created inside a caller's transaction commits or aborts with it."""
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        owner = await users.create({"external_id": "owner", "display_name": "o"})
        groups = caas_layer.repo(GroupRepository)
        with pytest.raises(RuntimeError, match="abort"):
            async with caas_layer.unit_of_work():
                await groups.create_with_members(name="joined", owner_id=owner.id)
                raise RuntimeError("abort")
        assert await groups.count() == 0
        opened = 0
        unit_of_work = caas_layer.unit_of_work

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal opened
            opened += 1
            return unit_of_work(*args, **kwargs)

        caas_layer.unit_of_work = counted  # type: ignore[method-assign]
        try:
            async with caas_layer.unit_of_work():
                await groups.create_with_members(name="joined", owner_id=owner.id)
        finally:
            del caas_layer.unit_of_work
        assert opened == 1  # the group's own transaction joined the caller's
        assert await groups.count() == 1


async def test_hot_key_writers_take_turns_in_this_process(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    inside = 0
    most = 0

    async def body() -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.001)
        inside -= 1

    async with tenant_scope(shared_tenant):
        await asyncio.gather(*(transaction(caas_layer, body, hot_key="k") for _ in range(5)))
    assert most == 1
