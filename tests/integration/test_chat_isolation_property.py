"""Property test of the tenant boundary through the chat repositories.

A hypothesis state machine sends, edits, deletes, restores and reacts to messages and moves
read watermarks in four fresh tenants per example (two in the shared model, one PRO, one
Enterprise), and tries to reach other tenants' messages and conversations by id. After each
step every tenant's history, reactions, unread count and physical `messages` collection must
equal a per-tenant model: gap-free seqs, its own texts, nothing of anyone else.

CI runs a fifth of the default profile's examples; `--hypothesis-profile=deep` runs many more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from beanie import PydanticObjectId
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    rule,
)

from caas_data import NotFoundError, tenant_scope
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReactionRepository,
    ReadReceiptRepository,
)
from caas_data.saas import UserRepository
from caas_data.testing import ServerHandle

from .conftest import raw_collection
from .machines import TIERS, LayerMachine, each_tenant, run_machine

EMOJIS = ("👍", "🎉")


@dataclass
class Sent:
    seq: int
    sender: int  # 0 or 1: index into the tenant's two users
    text: str
    deleted: bool = False


@dataclass
class Chat:
    """One tenant's expected state."""

    users: tuple[PydanticObjectId, PydanticObjectId]
    conversation: PydanticObjectId
    messages: dict[PydanticObjectId, Sent] = field(default_factory=dict)
    reactions: set[tuple[PydanticObjectId, int, str]] = field(default_factory=set)
    read: int = 0  # user 1's watermark


class ChatIsolationMachine(LayerMachine):
    @initialize()
    def provision(self) -> None:
        self.tiers = self.new_tenants("c")
        self.tenants = list(self.tiers)
        self.chats: dict[str, Chat] = {}

        async def go() -> None:
            for tenant in self.tenants:
                async with tenant_scope(tenant, layer=self.layer):
                    users = await self.layer.repo(UserRepository).create_many(
                        [{"external_id": f"{tenant}-{i}", "display_name": tenant} for i in (0, 1)]
                    )
                    a, b = (u.id for u in users)
                    assert a is not None and b is not None
                    conv = await self.layer.repo(ConversationRepository).open_direct(a, b)
                    assert conv.id is not None
                    self.chats[tenant] = Chat((a, b), conv.id)

        self.run(go())

    # -- helpers --------------------------------------------------------------------

    def pick(
        self, data: st.DataObject, tenant: str, *, deleted: bool | None = None
    ) -> PydanticObjectId | None:
        ids = sorted(
            i
            for i, m in self.chats[tenant].messages.items()
            if deleted is None or m.deleted is deleted
        )
        return data.draw(st.sampled_from(ids)) if ids else None

    async def scoped(self, tenant: str, coro_fn: Any) -> Any:
        async with tenant_scope(tenant, layer=self.layer):
            return await coro_fn()

    def repo(self, repository: type[Any]) -> Any:
        return self.layer.repo(repository)

    tenant_index = st.integers(min_value=0, max_value=len(TIERS) - 1)

    # -- rules ----------------------------------------------------------------------

    @rule(t=tenant_index, sender=st.integers(0, 1), words=st.sampled_from(["hi", "hello there"]))
    def send(self, t: int, sender: int, words: str) -> None:
        tenant = self.tenants[t]
        chat = self.chats[tenant]
        text = f"{tenant} {words} {next(self.counter)}"

        async def go() -> Any:
            return await self.repo(MessageRepository).send(
                chat.conversation, chat.users[sender], text=text
            )

        message = self.run(self.scoped(tenant, go))
        expected_seq = len(chat.messages) + 1
        assert (message.seq, message.tenant_id) == (expected_seq, tenant)
        chat.messages[message.id] = Sent(expected_seq, sender, text)
        if sender == 1:  # a sender has read what they sent
            chat.read = expected_seq

    @rule(t=tenant_index, data=st.data())
    def edit(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        chat = self.chats[tenant]
        target = self.pick(data, tenant, deleted=False)
        if target is None:
            return
        sent = chat.messages[target]
        text = f"{tenant} edited {next(self.counter)}"

        async def go() -> None:
            messages = self.repo(MessageRepository)
            await messages.edit(await messages.get(target), text, actor=chat.users[sent.sender])

        self.run(self.scoped(tenant, go))
        sent.text = text

    @rule(t=tenant_index, data=st.data())
    def delete(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        chat = self.chats[tenant]
        target = self.pick(data, tenant, deleted=False)
        if target is None:
            return
        sender = chat.users[chat.messages[target].sender]
        self.run(
            self.scoped(
                tenant, lambda: self.repo(MessageRepository).soft_delete(target, actor=sender)
            )
        )
        chat.messages[target].deleted = True
        # Reactions stay stored with a deleted message (a restore brings them back).

    @rule(t=tenant_index, data=st.data())
    def restore(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        chat = self.chats[tenant]
        target = self.pick(data, tenant, deleted=True)
        if target is None:
            return
        sender = chat.users[chat.messages[target].sender]
        self.run(
            self.scoped(tenant, lambda: self.repo(MessageRepository).restore(target, actor=sender))
        )
        chat.messages[target].deleted = False

    @rule(t=tenant_index, data=st.data(), user=st.integers(0, 1), emoji=st.sampled_from(EMOJIS))
    def react(self, t: int, data: st.DataObject, user: int, emoji: str) -> None:
        tenant = self.tenants[t]
        chat = self.chats[tenant]
        target = self.pick(data, tenant, deleted=False)
        if target is None:
            return
        present = self.run(
            self.scoped(
                tenant,
                lambda: self.repo(ReactionRepository).toggle(target, chat.users[user], emoji),
            )
        )
        key = (target, user, emoji)
        assert present is (key not in chat.reactions)
        chat.reactions ^= {key}

    @rule(t=tenant_index, seq=st.integers(0, 30))
    def mark_read(self, t: int, seq: int) -> None:
        tenant = self.tenants[t]
        chat = self.chats[tenant]

        async def go() -> Any:
            return await self.repo(ReadReceiptRepository).mark_read(
                chat.conversation, chat.users[1], seq
            )

        receipt = self.run(self.scoped(tenant, go))
        chat.read = max(chat.read, min(seq, len(chat.messages)))
        assert receipt.last_read_seq == chat.read

    @rule(t=tenant_index, data=st.data())
    def reach_for_another_tenant(self, t: int, data: st.DataObject) -> None:
        tenant = self.tenants[t]
        others = [o for o in self.tenants if o != tenant]
        other = self.chats[data.draw(st.sampled_from(others))]
        foreign = sorted(other.messages)
        chat = self.chats[tenant]

        async def go() -> None:
            messages = self.repo(MessageRepository)
            with pytest.raises(NotFoundError):  # another tenant's conversation is not here
                await messages.history(other.conversation, limit=100)
            with pytest.raises(NotFoundError):
                await self.repo(ConversationRepository).count_unread(
                    other.conversation, other.users[1]
                )
            if foreign:
                target = data.draw(st.sampled_from(foreign))
                assert await messages.get_or_none(target, include_deleted=True) is None
                with pytest.raises(NotFoundError):
                    await self.repo(ReactionRepository).toggle(target, chat.users[0], "👍")
                with pytest.raises(NotFoundError):
                    await messages.soft_delete(target, actor=other.users[0])

        self.run(self.scoped(tenant, go))

    # -- the invariant --------------------------------------------------------------

    @invariant()
    def every_tenant_sees_exactly_its_chat(self) -> None:
        if not hasattr(self, "chats"):
            return

        async def check(tenant: str, chat: Chat) -> None:
            async with tenant_scope(tenant, layer=self.layer):
                page = await self.repo(MessageRepository).history(chat.conversation, limit=1000)
                seen = {m.id: (m.seq, m.tenant_id, m.is_deleted, m.text) for m in page}
                assert seen == {
                    i: (s.seq, tenant, s.deleted, None if s.deleted else s.text)
                    for i, s in chat.messages.items()
                }, tenant
                summaries = await self.repo(ReactionRepository).summaries(list(seen))
                counted = {(i, r.emoji): r.count for i, rs in summaries.items() for r in rs}
                expected: dict[tuple[PydanticObjectId, str], int] = {}
                for message_id, _, emoji in chat.reactions:
                    key = (message_id, emoji)
                    expected[key] = expected.get(key, 0) + 1
                assert counted == expected, tenant
                unread = await self.repo(ConversationRepository).count_unread(
                    chat.conversation, chat.users[1]
                )
                assert unread == len(chat.messages) - chat.read
            raw = raw_collection(self.layer, tenant, self.tiers[tenant], "messages")
            stored = await raw.find({"conversation_id": chat.conversation}).to_list()
            assert {d["_id"]: d["tenant_id"] for d in stored} == dict.fromkeys(
                chat.messages, tenant
            )

        self.run(each_tenant(check, self.chats))


def test_chat_isolation_state_machine(caas_server: ServerHandle) -> None:
    run_machine(ChatIsolationMachine, caas_server, examples_share=0.2)
