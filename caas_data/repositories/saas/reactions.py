"""Reactions: one per (message, user, emoji), toggled, and their counts per message."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from beanie import PydanticObjectId

from caas_data.documents.saas.messaging import Reaction
from caas_data.documents.writes import insert_document
from caas_data.errors import DuplicateError
from caas_data.repositories.base import Repository
from caas_data.repositories.saas.messages import MessageRepository
from caas_data.repositories.saas.participants import ConversationParticipants
from caas_data.repositories.values import MAX_PAGE_SIZE, check_int, parse_id, parse_ids

__all__ = ["ReactionCount", "ReactionRepository"]


@dataclass(frozen=True, slots=True)
class ReactionCount:
    """One emoji on a message: how many users chose it, and whether the viewer did."""

    emoji: str
    count: int
    reacted: bool


class ReactionRepository(Repository[Reaction]):
    """Emoji reactions: toggled per (message, user, emoji), summarised per message."""

    document_type = Reaction

    async def toggle(
        self, message_id: PydanticObjectId, user_id: PydanticObjectId, emoji: str
    ) -> bool:
        """Add the reaction if absent, remove it if present; returns whether it is present.

        Concurrent toggles of one reaction leave one document or none: the unique index
        turns a second add into "already present", never a duplicate or an error.

        Raises:
            NotFoundError: the message does not exist or is deleted.
            DocumentValidationError: a bad emoji, or the user is not a participant.
        """
        user = parse_id(user_id, "user_id")
        message = await self.layer.repo(MessageRepository).get(parse_id(message_id, "message_id"))
        new = self._validate(
            {
                "message_id": message.id,
                "conversation_id": message.conversation_id,
                "user_id": user,
                "emoji": emoji,
            }
        )
        await self.layer.repo(ConversationParticipants).require_participant(
            message.conversation_id, user
        )
        collection = self.collection()
        key = {"message_id": new.message_id, "user_id": user, "emoji": new.emoji}
        removed = await collection.delete_one(key)
        if removed.deleted_count:
            return False
        with suppress(DuplicateError):  # a concurrent toggle added it first: present, once
            await insert_document(new, collection=collection)
        return True

    async def summary(
        self, message_id: PydanticObjectId, *, viewer_id: PydanticObjectId | None = None
    ) -> list[ReactionCount]:
        """The reactions on one message, most used first."""
        message = parse_id(message_id, "message_id")
        return (await self.summaries([message], viewer_id=viewer_id)).get(message, [])

    async def summaries(
        self,
        message_ids: Sequence[PydanticObjectId],
        *,
        viewer_id: PydanticObjectId | None = None,
    ) -> dict[PydanticObjectId, list[ReactionCount]]:
        """Reaction counts of several messages (e.g. a history page) in one aggregation."""
        ids = parse_ids(message_ids, "message_ids")
        if not ids:
            return {}
        check_int("message_ids", len(ids), minimum=1, maximum=MAX_PAGE_SIZE)
        pipeline = [
            {"$match": {"message_id": {"$in": ids}}},
            {
                "$group": {
                    "_id": {"message_id": "$message_id", "emoji": "$emoji"},
                    "count": {"$sum": 1},
                    "mine": {"$max": {"$eq": ["$user_id", viewer_id]}},
                    "first": {"$min": "$created_at"},
                }
            },
            {"$sort": {"count": -1, "first": 1, "_id.emoji": 1}},
        ]
        collection = self.collection()
        with self._errors(collection):
            rows = await (await collection.aggregate(pipeline)).to_list(None)
        result: dict[PydanticObjectId, list[ReactionCount]] = {}
        for row in rows:
            key = PydanticObjectId(row["_id"]["message_id"])
            result.setdefault(key, []).append(
                ReactionCount(row["_id"]["emoji"], int(row["count"]), bool(row["mine"]))
            )
        return result
