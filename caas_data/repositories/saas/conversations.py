"""Conversations: direct and group, their membership and a user's conversation list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from beanie import PydanticObjectId
from pymongo import ReturnDocument

from caas_data.documents.saas.messaging import (
    MAX_PARTICIPANTS,
    Conversation,
    ConversationKind,
    direct_key,
)
from caas_data.errors import DocumentValidationError
from caas_data.repositories.pages import Page
from caas_data.repositories.saas.participants import ConversationParticipants
from caas_data.repositories.saas.receipts import ReadReceiptRepository
from caas_data.repositories.values import parse_id, parse_ids, typed_equality

__all__ = ["ConversationRepository", "ConversationSummary"]


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A conversation in a user's list, with what the user has not read yet."""

    conversation: Conversation
    unread_count: int


class ConversationRepository(ConversationParticipants):
    """Direct and group conversations, their membership and a user's conversation list."""

    document_type = Conversation

    async def open_direct(self, user_a: PydanticObjectId, user_b: PydanticObjectId) -> Conversation:
        """The one direct conversation of two users, created on first use.

        Idempotent and race-free: concurrent openers (either side) get the same conversation,
        through a unique `direct_key` and an upsert.

        Raises:
            DocumentValidationError: the same user twice, or a malformed id.
            NotFoundError: a user does not exist.
        """
        a, b = parse_id(user_a, "user_a"), parse_id(user_b, "user_b")
        try:
            key = direct_key(a, b)
        except ValueError as exc:
            raise DocumentValidationError(str(exc), fields=("user_b",)) from exc
        found = await self.find_one({"direct_key": typed_equality(key, "string")})
        if found is not None:
            return found
        await self._require_users([a, b])
        low, high = sorted((a, b), key=str)
        new = Conversation(
            kind=ConversationKind.DIRECT, participant_ids=[low, high], direct_key=key
        )
        return await self._upsert(
            {"direct_key": typed_equality(key, "string")},
            {"$setOnInsert": self._insert_fields(new)},
        )

    async def open_group(
        self,
        group_id: PydanticObjectId,
        *,
        title: str,
        participant_ids: Sequence[PydanticObjectId],
        created_by: PydanticObjectId | None = None,
    ) -> Conversation:
        """The conversation of a group (one per group), created on first use.

        When it exists already it is returned as stored: membership changes go through
        `add_participants` / `remove_participants`.
        """
        group = parse_id(group_id, "group_id")
        found = await self.find_one({"group_id": typed_equality(group, "objectId")})
        if found is not None:
            return found
        members = parse_ids(participant_ids, "participant_ids")
        new = self._validate(
            {
                "kind": ConversationKind.GROUP,
                "group_id": group,
                "title": title,
                "participant_ids": members,
                "created_by": created_by,
            }
        )
        await self._require_users(members)
        return await self._upsert(
            {"group_id": typed_equality(group, "objectId")},
            {"$setOnInsert": self._insert_fields(new)},
        )

    async def add_participants(
        self, conversation_id: PydanticObjectId, user_ids: Sequence[PydanticObjectId]
    ) -> Conversation:
        """Add users to a group conversation (already present ones are left alone).

        Raises:
            DocumentValidationError: not a group, or it would pass `MAX_PARTICIPANTS`.
            NotFoundError: no such conversation, or a user does not exist.
        """
        users = self._member_ids(user_ids)
        await self._require_users(users)
        members = {"$setUnion": ["$participant_ids", users]}
        return await self._change_group(
            conversation_id,
            {"$lte": [{"$size": members}, MAX_PARTICIPANTS]},
            {"$addToSet": {"participant_ids": {"$each": users}}},
            f"would have more than {MAX_PARTICIPANTS} participants",
        )

    async def remove_participants(
        self, conversation_id: PydanticObjectId, user_ids: Sequence[PydanticObjectId]
    ) -> Conversation:
        """Remove users from a group conversation (absent ones are ignored).

        Raises:
            DocumentValidationError: not a group, or no participant would be left.
            NotFoundError: no such conversation.
        """
        users = self._member_ids(user_ids)
        remaining = {"$setDifference": ["$participant_ids", users]}
        return await self._change_group(
            conversation_id,
            {"$gt": [{"$size": remaining}, 0]},
            {"$pull": {"participant_ids": {"$in": users}}},
            "would have no participant left",
        )

    @staticmethod
    def _member_ids(user_ids: Sequence[PydanticObjectId]) -> list[PydanticObjectId]:
        users = parse_ids(user_ids, "user_ids")
        if not users:
            raise DocumentValidationError("no users given", fields=("user_ids",))
        return users

    async def _change_group(
        self,
        conversation_id: PydanticObjectId,
        condition: Mapping[str, Any],
        update: Mapping[str, Any],
        refusal: str,
    ) -> Conversation:
        """Apply a membership update if the conversation is a group and `condition` holds."""
        key = parse_id(conversation_id, "conversation_id")
        raw = await self.collection().find_one_and_update(
            {"_id": key, "kind": ConversationKind.GROUP, "$expr": dict(condition)},
            dict(update),
            return_document=ReturnDocument.AFTER,
        )
        if raw is not None:
            return self._load(raw)
        conversation = await self.get(key)  # NotFoundError when missing
        reason = refusal
        if conversation.kind is not ConversationKind.GROUP:
            reason = f"is {conversation.kind}: its members are fixed"
        raise DocumentValidationError(
            f"conversation {key} {reason}", fields=("user_ids",), document_type=Conversation
        )

    async def inbox(
        self, user_id: PydanticObjectId, *, limit: int = 20, after: str | None = None
    ) -> Page[ConversationSummary]:
        """A page of `user_id`'s conversations, latest activity first, with unread counts.

        Two queries per page: the conversations (index `tenant_participant_activity`) and the
        user's receipts for them. A conversation that moves up while paging may show twice.
        """
        user = parse_id(user_id, "user_id")
        page = await self.find(
            {"participant_ids": user}, sort="-last_message_at", limit=limit, after=after
        )
        receipts = self.layer.repo(ReadReceiptRepository)
        marks = await receipts.watermarks(user, [parse_id(c) for c in page.items])
        items = [
            ConversationSummary(c, max(0, c.last_seq - marks.get(parse_id(c), 0)))
            for c in page.items
        ]
        return Page(items, page.next_cursor)

    async def count_unread(
        self, conversation_id: PydanticObjectId, user_id: PydanticObjectId
    ) -> int:
        """Messages after the user's read watermark (no message is scanned)."""
        conversation = await self.require_participant(conversation_id, user_id)
        receipts = self.layer.repo(ReadReceiptRepository)
        mark = await receipts.watermark(parse_id(conversation), parse_id(user_id, "user_id"))
        return max(0, conversation.last_seq - mark)
