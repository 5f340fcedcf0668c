"""Message search: the portable keyword index, ranking, paging, and `$text` detection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from beanie import PydanticObjectId
from pymongo.errors import OperationFailure

from caas_data import DataLayer, DocumentValidationError, Tier, tenant_scope
from caas_data.repositories.saas.messaging import ConversationRepository, MessageRepository
from caas_data.repositories.saas.search import MessageSearchRepository
from caas_data.saas import UserRepository

TenantFactory = Callable[..., Awaitable[str]]


class PortableSearch(MessageSearchRepository):
    """Always the keyword index, whatever the server supports."""

    use_text_index = False


async def make_users(layer: DataLayer, count: int) -> list[PydanticObjectId]:
    users = await layer.repo(UserRepository).create_many(
        {"external_id": f"u{i}", "display_name": f"User {i}"} for i in range(count)
    )
    return [u.id for u in users if u.id is not None]


async def server_has_text_indexes(layer: DataLayer) -> bool:
    """Found out independently of the repository, on a scratch collection."""
    scratch = layer.client[f"{layer.prefix}_scratch"]["text_probe"]
    try:
        await scratch.create_index([("text", "text")])
    except OperationFailure:
        return False
    return True


async def test_portable_search_ranks_by_matched_terms_then_recency(
    caas_layer: DataLayer, tenant: str, caas_tenant: TenantFactory
) -> None:
    async with tenant_scope(tenant):
        alice, bob, carol = await make_users(caas_layer, 3)
        conversations = caas_layer.repo(ConversationRepository)
        with_bob = await conversations.open_direct(alice, bob)
        with_carol = await conversations.open_direct(alice, carol)
        messages = caas_layer.repo(MessageRepository)
        one = await messages.send(with_bob.id, alice, text="Lunch at the CAFÉ?")
        two = await messages.send(with_carol.id, carol, text="café lunch tomorrow, Bob")
        three = await messages.send(with_bob.id, bob, text="the cafe is closed")
        await messages.send(with_bob.id, bob, text="nothing to see")
        gone = await messages.send(with_bob.id, alice, text="secret cafe lunch plan")
        await messages.soft_delete(gone.id)
        search = caas_layer.repo(PortableSearch)
        found = await search.search("cafe lunch")
        assert [(h.message.id, h.score) for h in found] == [(two.id, 2), (one.id, 2), (three.id, 1)]
        in_bob = await search.search("Café", conversation_id=with_bob.id)
        assert [h.message.id for h in in_bob] == [three.id, one.id]
        page1 = await search.search("cafe lunch", limit=2)
        page2 = await search.search("cafe lunch", limit=2, after=page1.next_cursor)
        assert [h.message.id for h in [*page1, *page2]] == [two.id, one.id, three.id]
        assert page2.next_cursor is None
        assert len(await search.search("submarine")) == 0
        edited = await messages.edit(three, "submarine sandwich", actor=bob)
        assert [h.message.id for h in await search.search("submarine")] == [edited.id]
        assert [h.message.id for h in await search.search("cafe lunch")] == [two.id, one.id]
    async with tenant_scope(await caas_tenant(Tier.FREE)):  # may share the collection
        assert len(await caas_layer.repo(PortableSearch).search("cafe")) == 0


async def test_search_refuses_queries_without_words(
    caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    async with tenant_scope(await caas_tenant(Tier.FREE)):
        search = caas_layer.repo(PortableSearch)
        with pytest.raises(DocumentValidationError) as empty:
            await search.search("the a, to!")
        assert empty.value.fields == ("query",)
        with pytest.raises(DocumentValidationError):
            await search.search("cafe", limit=0)
        with pytest.raises(DocumentValidationError):
            await search.search("cafe", after="garbage")


@pytest.mark.caas_isolated  # detection is cached per layer: starts from a new one
async def test_text_index_support_is_detected_once_per_layer(
    caas_layer: DataLayer, tenant: str
) -> None:
    """The embedded server refuses text indexes: the portable path runs there."""
    expected = await server_has_text_indexes(caas_layer)
    async with tenant_scope(tenant):
        alice, bob = await make_users(caas_layer, 2)
        conv = await caas_layer.repo(ConversationRepository).open_direct(alice, bob)
        sent = await caas_layer.repo(MessageRepository).send(conv.id, alice, text="hello world")
        search = caas_layer.repo(MessageSearchRepository)
        assert MessageSearchRepository.text_search_known(caas_layer) is None
        assert await search.text_search_ready() is expected
        assert MessageSearchRepository.text_search_known(caas_layer) is expected
        hits = await search.search("hello")
        assert [h.message.id for h in hits] == [sent.id]
        indexes = await search.collection().index_information()
        assert ("tenant_text" in indexes) is expected
        hello = await caas_layer.client.admin.command("hello")
        if hello.get("setName") == "secantus":
            assert expected is False
