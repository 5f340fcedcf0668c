"""Set-up and checks shared by the fault suites."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from beanie import PydanticObjectId

from caas_data import CaasDataError, DataLayer, RetryableError, tenant_scope
from caas_data.repositories.saas.messaging import ConversationRepository, MessageRepository
from caas_data.testing import Factories
from caas_data.testing.load import Ack
from tests.faults.conftest import BUDGET_MS, SLACK_SECONDS, note_error

T = TypeVar("T")


async def chat(
    layer: DataLayer, factories: Factories | None = None, people: int = 3
) -> tuple[list[PydanticObjectId], Any]:
    """Users and a group conversation of the running scope's tenant."""
    factories = factories or Factories(layer)
    users = await factories.users(people)
    conversation = await factories.group_conversation(users)
    return [u.id for u in users if u.id is not None], conversation


async def bounded(call: Awaitable[T]) -> T:
    """Await `call`: it must end within the budget, and raise nothing but `CaasDataError`."""
    start = time.monotonic()
    outcome = "returned"
    try:
        return await call
    except CaasDataError as exc:
        note_error(exc)
        outcome = repr(exc)
        raise
    except Exception as exc:
        note_error(exc)
        outcome = repr(exc)
        raise AssertionError(f"a raw {type(exc).__name__} escaped the layer: {exc}") from exc
    finally:
        elapsed = time.monotonic() - start
        assert elapsed < BUDGET_MS / 1000 + SLACK_SECONDS, f"took {elapsed:.1f}s: {outcome}"


async def send_until_acked(
    layer: DataLayer,
    tenant_id: str,
    conversation_id: PydanticObjectId,
    sender: PydanticObjectId,
    client_id: str,
    *,
    attempts: int = 40,
) -> Ack | None:
    """Send with a client id, again after each `RetryableError`, as a client app would."""
    messages = layer.repo(MessageRepository)
    for _ in range(attempts):
        try:
            message = await bounded(
                messages.send(conversation_id, sender, text=client_id, client_message_id=client_id)
            )
        except RetryableError:
            continue
        assert message.id is not None
        return Ack(tenant_id, conversation_id, message.id, sender, client_id, message.seq)
    return None


async def fill_all_gaps(
    layer: DataLayer, tenant_id: str, conversation_ids: set[PydanticObjectId]
) -> int:
    """The documented sweeper, once nothing is in flight: fill numbers no sender could."""
    filled = 0
    async with tenant_scope(tenant_id, layer=layer):
        messages = layer.repo(MessageRepository)
        for conversation_id in conversation_ids:
            filled += len(await messages.fill_gaps(conversation_id, grace_seconds=0))
    return filled


__all__ = ["ConversationRepository", "bounded", "chat", "fill_all_gaps", "send_until_acked"]
