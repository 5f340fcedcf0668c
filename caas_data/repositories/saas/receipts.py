"""Read receipts: per-(conversation, user) watermarks that never move back."""

from __future__ import annotations

from collections.abc import Sequence

from beanie import PydanticObjectId

from caas_data.documents.base import utcnow
from caas_data.documents.saas.messaging import ReadReceipt
from caas_data.repositories.base import Repository
from caas_data.repositories.saas.participants import ConversationParticipants
from caas_data.repositories.values import check_int, parse_id

__all__ = ["ReadReceiptRepository"]


class ReadReceiptRepository(Repository[ReadReceipt]):
    """Per-(conversation, user) read watermarks that never move back."""

    document_type = ReadReceipt

    async def mark_read(
        self, conversation_id: PydanticObjectId, user_id: PydanticObjectId, seq: int
    ) -> ReadReceipt:
        """Record that `user_id` has read up to `seq` (clamped to the newest message).

        Monotonic: a receipt older than the stored one (out of order, or from another
        device) leaves the watermark where it is.

        Raises:
            DocumentValidationError: a negative seq, or the user is not a participant.
            NotFoundError: no such conversation.
        """
        check_int("seq", seq)
        conversations = self.layer.repo(ConversationParticipants)
        conversation = await conversations.require_participant(conversation_id, user_id)
        return await self.advance(
            parse_id(conversation),
            parse_id(user_id, "user_id"),
            min(seq, conversation.last_seq),
        )

    async def advance(
        self, conversation_id: PydanticObjectId, user_id: PydanticObjectId, seq: int
    ) -> ReadReceipt:
        """Move the watermark to `seq` if that is further; no membership check (`mark_read`)."""
        check_int("seq", seq)
        return await self._upsert(
            {"conversation_id": conversation_id, "user_id": user_id},
            {"$max": {"last_read_seq": seq, "read_at": utcnow()}},
        )

    async def watermark(self, conversation_id: PydanticObjectId, user_id: PydanticObjectId) -> int:
        """The last `seq` the user has read in the conversation (0: nothing yet)."""
        raw = await self.collection().find_one(
            {"conversation_id": conversation_id, "user_id": user_id}, {"last_read_seq": 1}
        )
        return int(raw["last_read_seq"]) if raw is not None else 0

    async def watermarks(
        self, user_id: PydanticObjectId, conversation_ids: Sequence[PydanticObjectId]
    ) -> dict[PydanticObjectId, int]:
        """The user's watermark in each of the conversations (missing: nothing read yet)."""
        if not conversation_ids:
            return {}
        collection = self.collection()
        with self._errors(collection):
            raws = await collection.find(
                {"conversation_id": {"$in": list(conversation_ids)}, "user_id": user_id},
                {"conversation_id": 1, "last_read_seq": 1},
            ).to_list(None)
        return {PydanticObjectId(r["conversation_id"]): int(r["last_read_seq"]) for r in raws}

    async def readers(self, conversation_id: PydanticObjectId, seq: int) -> list[PydanticObjectId]:
        """Users who have read the conversation up to at least `seq` (for read ticks)."""
        check_int("seq", seq)
        collection = self.collection()
        with self._errors(collection):
            raws = await collection.find(
                {"conversation_id": conversation_id, "last_read_seq": {"$gte": seq}},
                {"user_id": 1},
            ).to_list(None)
        return [PydanticObjectId(r["user_id"]) for r in raws]
