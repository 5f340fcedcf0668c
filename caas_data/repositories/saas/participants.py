"""Participant checks of conversations, shared by every messaging repository."""

from __future__ import annotations

from collections.abc import Sequence

from beanie import PydanticObjectId

from caas_data.documents.saas.messaging import Conversation
from caas_data.documents.saas.users import User
from caas_data.errors import DocumentValidationError, NotFoundError
from caas_data.repositories.base import Repository
from caas_data.repositories.values import parse_id

__all__ = ["ConversationParticipants"]


class ConversationParticipants(Repository[Conversation]):
    """Who belongs to a conversation: the checks every messaging repository makes.

    Apart from `ConversationRepository` (whose inbox reads receipts) so that receipts,
    reactions and messages check participants without importing the conversation list.
    """

    document_type = Conversation

    async def require_participant(
        self, conversation_id: PydanticObjectId, user_id: PydanticObjectId
    ) -> Conversation:
        """The conversation, checked to include `user_id`.

        Raises:
            NotFoundError: no such conversation.
            DocumentValidationError: the user is not a participant.
        """
        conversation = await self.get(parse_id(conversation_id, "conversation_id"))
        if parse_id(user_id, "user_id") not in conversation.participant_ids:
            raise DocumentValidationError(
                f"user {user_id} is not a participant of conversation {conversation_id}",
                fields=("user_id",),
                document_type=Conversation,
            )
        return conversation

    async def _require_users(self, user_ids: Sequence[PydanticObjectId]) -> None:
        wanted = set(user_ids)
        collection = self.layer.collection(User)
        with self._errors(collection):
            raws = await collection.find({"_id": {"$in": list(wanted)}}, {"_id": 1}).to_list(None)
        found = {raw["_id"] for raw in raws}
        missing = wanted - found
        if missing:
            raise NotFoundError(
                f"users not found: {sorted(str(m) for m in missing)}",
                tenant_id=collection.rules.tenant_id,
                document_type=User,
            )
