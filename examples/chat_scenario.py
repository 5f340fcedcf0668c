"""Chat scenario: a group conversation in two tenants (FREE: shared collections, PRO: its own).

Run with `python examples/chat_scenario.py`. It starts the test server of `caas_data.testing`
(CAAS_MONGODB_URI if set, else a MongoDB container if Docker answers, else the embedded server)
and drops its databases at the end.
"""

from __future__ import annotations

import asyncio

from beanie import PydanticObjectId

import caas_data
from caas_data import DataLayer, Tier, tenant_scope
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReactionRepository,
    ReadReceiptRepository,
)
from caas_data.saas import UserRepository
from caas_data.testing import drop_prefix_databases, new_prefix, start_test_server

TENANTS = {"acme-free": Tier.FREE, "globex-pro": Tier.PRO}


async def chat(layer: DataLayer, tenant_id: str) -> None:
    async with tenant_scope(tenant_id):
        users = layer.repo(UserRepository)
        ada, bo, cy = [
            await users.create({"external_id": f"u-{name}", "display_name": name})
            for name in ("Ada", "Bo", "Cy")
        ]
        names = {u.id: u.display_name for u in (ada, bo, cy)}
        conversations = layer.repo(ConversationRepository)
        team = await conversations.open_group(
            PydanticObjectId(),  # the `groups` row this conversation belongs to
            title="Launch",
            participant_ids=[ada.id, bo.id, cy.id],
            created_by=ada.id,
        )
        direct = await conversations.open_direct(ada.id, cy.id)

        messages = layer.repo(MessageRepository)
        hello = await messages.send(team.id, ada.id, text="Hello team! Launch on Friday?")
        await messages.send(team.id, bo.id, text="Friday works", reply_to_id=hello.id)
        oops = await messages.send(team.id, bo.id, text="wrong chat, sorry")
        await messages.soft_delete(oops.id, actor=bo.id)
        await messages.send(direct.id, ada.id, text="Cy, can you review the notes?")

        reactions = layer.repo(ReactionRepository)
        await reactions.toggle(hello.id, bo.id, "🚀")
        await reactions.toggle(hello.id, cy.id, "🚀")
        await layer.repo(ReadReceiptRepository).mark_read(team.id, cy.id, hello.seq)

        print(f"\n[{tenant_id}] history of '{team.title}', as Cy sees it:")
        for message in await messages.history(team.id, limit=10, viewer_id=cy.id):
            text = "(message deleted)" if message.is_deleted else message.text
            print(f"  #{message.seq} {names[message.sender_id]}: {text}")
        summary = await reactions.summary(hello.id, viewer_id=cy.id)
        print("  reactions on #1:", ", ".join(f"{r.emoji} x{r.count}" for r in summary))

        print(f"[{tenant_id}] Cy's conversations:")
        for item in await conversations.inbox(cy.id):
            conversation, last = item.conversation, item.conversation.last_message
            title = conversation.title or "direct with Ada"
            text = "(message deleted)" if last and last.deleted else last and last.text
            preview = f"{names[last.sender_id]}: {text}" if last else "-"
            print(f"  {title:<16} {item.unread_count} unread   last: {preview}")


async def main(uri: str) -> None:
    layer = await caas_data.connect(uri, database_prefix=new_prefix())
    try:
        for tenant_id, tier in TENANTS.items():
            await layer.tenants.provision(tenant_id, tier=tier)
            await chat(layer, tenant_id)
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


if __name__ == "__main__":
    server = start_test_server()
    try:
        print(f"server: {server.handle.description}")
        asyncio.run(main(server.handle.uri))
    finally:
        server.stop()
