"""`repo.update` validates the changed fields (the whole document when a model validator looks)."""

from __future__ import annotations

import pytest
from beanie import PydanticObjectId

from caas_data import DataLayer, DocumentValidationError, tenant_scope
from caas_data.saas import ConversationRepository, UserRepository


async def test_update_checks_changed_fields_and_leaves_the_original(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        users = caas_layer.repo(UserRepository)
        ada = await users.create({"external_id": "ada", "display_name": "Ada"})
        for bad in ({"display_name": ""}, {"email": "not an address"}, {"status": "nope"}):
            with pytest.raises(DocumentValidationError):
                await users.update(ada, **bad)
        updated = await users.update(ada, display_name="Ada L.", metadata={"k": 1})
        stored = await users.get(ada.id)
    assert (ada.display_name, ada.version) == ("Ada", 0)  # the caller's object is unchanged
    assert (updated.display_name, updated.metadata, updated.version) == ("Ada L.", {"k": 1}, 1)
    assert (stored.display_name, stored.metadata, stored.version) == ("Ada L.", {"k": 1}, 1)


async def test_a_model_validator_still_sees_the_whole_document(
    caas_layer: DataLayer, tenant: str
) -> None:
    async with tenant_scope(tenant):
        users = await caas_layer.repo(UserRepository).create_many(
            [{"external_id": f"m{i}", "display_name": f"M {i}"} for i in range(3)]
        )
        conversations = caas_layer.repo(ConversationRepository)
        direct = await conversations.open_direct(users[0].id, users[1].id)
        third: PydanticObjectId = users[2].id  # type: ignore[assignment]
        with pytest.raises(DocumentValidationError, match="two participants"):
            await conversations.update(direct, participant_ids=[*direct.participant_ids, third])
