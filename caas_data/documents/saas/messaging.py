"""Messaging domain (seed: saas/messaging): conversations, messages, reactions, read receipts.

Ordering inside a conversation comes from a per-conversation sequence number (`seq`), not
from clocks: it is allocated with the message insert in one transaction, so it has no gaps and
no duplicates. Unread counts are `conversation.last_seq - receipt.last_read_seq`, never a scan.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from beanie import PydanticObjectId
from pydantic import BaseModel, Field, field_validator, model_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from caas_data.documents.base import SoftDeleteMixin, TenantDocument, utcnow
from caas_data.documents.saas.users import DELETED_USER_ID

__all__ = [
    "DOCUMENTS",
    "MAX_EDITS_KEPT",
    "MAX_PARTICIPANTS",
    "Attachment",
    "Conversation",
    "ConversationKind",
    "Message",
    "MessageEdit",
    "MessagePreview",
    "Reaction",
    "ReadReceipt",
    "direct_key",
    "preview_of",
]

MAX_EDITS_KEPT = 20
"""Previous texts kept on a message; older ones are dropped (`edit_count` keeps the total)."""

MAX_TEXT_LENGTH = 10_000
MAX_ATTACHMENTS = 20
MAX_PARTICIPANTS = 1_000
"""Each message moves `last_message_at`, rewriting one conversation-list index key per member."""
PREVIEW_LENGTH = 140


def direct_key(a: PydanticObjectId, b: PydanticObjectId) -> str:
    """The key of the one direct conversation between two users, whoever opens it."""
    if a == b:
        raise ValueError("a direct conversation needs two different users")
    low, high = sorted((str(a), str(b)))
    return f"{low}:{high}"


class ConversationKind(StrEnum):
    """Direct: exactly two users, one conversation per pair. Group: backed by a `groups` row."""

    DIRECT = "direct"
    GROUP = "group"


class MessagePreview(BaseModel):
    """The last message, copied onto its conversation so a conversation list is one query."""

    message_id: PydanticObjectId
    seq: int = Field(ge=1)
    sender_id: PydanticObjectId
    text: str | None = Field(default=None, max_length=PREVIEW_LENGTH)
    attachment_count: int = Field(default=0, ge=0)
    sent_at: datetime
    deleted: bool = False


class Conversation(TenantDocument):
    """A direct or group conversation; `participant_ids` is its membership (multikey)."""

    kind: ConversationKind
    participant_ids: list[PydanticObjectId] = Field(min_length=1, max_length=MAX_PARTICIPANTS)
    direct_key: str | None = Field(default=None, description="Set on direct conversations.")
    group_id: PydanticObjectId | None = Field(default=None, description="The `groups` row.")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    created_by: PydanticObjectId | None = None
    last_seq: int = Field(default=0, ge=0, description="Seq of the newest message.")
    last_message: MessagePreview | None = None
    last_message_at: datetime = Field(
        default_factory=utcnow,
        description="Last activity: the newest message's time, or the creation time.",
    )

    class Settings:
        name = "conversations"
        indexes = [
            # One direct conversation per unordered pair: concurrent openers meet here.
            IndexModel(
                [("tenant_id", ASCENDING), ("direct_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"direct_key": {"$type": "string"}},
                name="tenant_direct_key_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("group_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"group_id": {"$type": "objectId"}},
                name="tenant_group_unique",
            ),
            # A user's conversation list: newest activity first, keyset on (_id) ties.
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    ("participant_ids", ASCENDING),
                    ("last_message_at", DESCENDING),
                    ("_id", DESCENDING),
                ],
                name="tenant_participant_activity",
            ),
        ]

    @field_validator("participant_ids")
    @classmethod
    def _distinct(cls, value: list[PydanticObjectId]) -> list[PydanticObjectId]:
        if len(set(value)) != len(value):
            raise ValueError("participant_ids must not repeat a user")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.kind is ConversationKind.DIRECT:
            if len(self.participant_ids) != 2:
                raise ValueError("a direct conversation has exactly two participants")
            if self.direct_key != direct_key(*self.participant_ids):
                raise ValueError("direct_key must be direct_key(participant_ids)")
            if self.group_id is not None:
                raise ValueError("a direct conversation has no group_id")
        else:
            if self.group_id is None:
                raise ValueError("a group conversation needs group_id")
            if self.direct_key is not None:
                raise ValueError("a group conversation has no direct_key")
        return self


class Attachment(BaseModel):
    """A reference to a stored file (`files` collection), with what a client shows before fetching.

    Only the reference lives here: the file row owns the bytes and their lifecycle.
    """

    file_id: PydanticObjectId
    name: str = Field(min_length=1, max_length=255)
    mime_type: str = Field(min_length=3, max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+$")
    size: int = Field(ge=0, description="Bytes.")


class MessageEdit(BaseModel):
    """A previous text of an edited message."""

    text: str | None
    edited_at: datetime


class Message(SoftDeleteMixin, TenantDocument):
    """A message; soft-deleted messages read as tombstones for everyone but their sender.

    `terms` is the portable keyword index used by search (normalised words of `text`).
    """

    conversation_id: PydanticObjectId
    seq: int = Field(ge=1, description="Position in the conversation, from 1, gap-free.")
    sender_id: PydanticObjectId
    text: str | None = Field(default=None, max_length=MAX_TEXT_LENGTH)
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    reply_to_id: PydanticObjectId | None = None
    thread_root_id: PydanticObjectId | None = None
    client_message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Chosen by the sending client: a retried send returns the first message.",
    )
    edited_at: datetime | None = None
    edit_count: int = Field(default=0, ge=0)
    edits: list[MessageEdit] = Field(default_factory=list, max_length=MAX_EDITS_KEPT)
    terms: list[str] = Field(default_factory=list)

    class Settings:
        name = "messages"
        indexes = [
            # History pages (newest, before=seq, after=seq) and the gap-free seq guarantee.
            IndexModel(
                [("tenant_id", ASCENDING), ("conversation_id", ASCENDING), ("seq", ASCENDING)],
                unique=True,
                name="tenant_conversation_seq_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    ("conversation_id", ASCENDING),
                    ("client_message_id", ASCENDING),
                ],
                unique=True,
                partialFilterExpression={"client_message_id": {"$type": "string"}},
                name="tenant_conversation_client_id_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("thread_root_id", ASCENDING), ("seq", ASCENDING)],
                partialFilterExpression={"thread_root_id": {"$type": "objectId"}},
                name="tenant_thread_seq",
            ),
            IndexModel([("tenant_id", ASCENDING), ("terms", ASCENDING)], name="tenant_terms"),
            IndexModel(
                [("tenant_id", ASCENDING), ("conversation_id", ASCENDING), ("terms", ASCENDING)],
                name="tenant_conversation_terms",
            ),
        ]

    @model_validator(mode="after")
    def _has_content(self) -> Self:
        # An erased user's messages keep their place in the conversation, without content; a
        # deleted placeholder (the number of a failed send) is a tombstone.
        deleted_sender = self.sender_id == DELETED_USER_ID
        if (
            not self.text
            and not self.attachments
            and not deleted_sender
            and self.deleted_at is None
        ):
            raise ValueError("a message needs text or at least one attachment")
        return self

    def tombstone(self) -> Message:
        """This deleted message as others see it: who and when, no content."""
        return self.model_copy(
            update={"text": None, "attachments": [], "edits": [], "terms": []}, deep=True
        )

    def viewed_by(self, viewer_id: PydanticObjectId | None) -> Message:
        """The message as `viewer_id` may see it: a tombstone if deleted, unless theirs."""
        if self.is_deleted and viewer_id != self.sender_id:
            return self.tombstone()
        return self


class Reaction(TenantDocument):
    """One user's emoji on one message: one document per (message, user, emoji)."""

    message_id: PydanticObjectId
    conversation_id: PydanticObjectId
    user_id: PydanticObjectId
    emoji: str = Field(min_length=1, max_length=32)

    class Settings:
        name = "reactions"
        indexes = [
            IndexModel(
                [
                    ("tenant_id", ASCENDING),
                    ("message_id", ASCENDING),
                    ("user_id", ASCENDING),
                    ("emoji", ASCENDING),
                ],
                unique=True,
                name="tenant_message_user_emoji_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
        ]

    @field_validator("emoji")
    @classmethod
    def _no_blank(cls, value: str) -> str:
        if value != value.strip() or any(ch.isspace() for ch in value):
            raise ValueError("an emoji must not contain whitespace")
        return value


class ReadReceipt(TenantDocument):
    """How far one user has read one conversation: a watermark that only moves forward."""

    conversation_id: PydanticObjectId
    user_id: PydanticObjectId
    last_read_seq: int = Field(default=0, ge=0)
    read_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "read_receipts"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("conversation_id", ASCENDING), ("user_id", ASCENDING)],
                unique=True,
                name="tenant_conversation_user_unique",
            ),
            IndexModel(
                [("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="tenant_created"
            ),
        ]


def _preview_text(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"


def preview_of(message: Message) -> dict[str, Any]:
    """The stored `last_message` of a conversation whose newest message is `message`."""
    preview = MessagePreview(
        message_id=message.id,
        seq=message.seq,
        sender_id=message.sender_id,
        text=None if message.is_deleted else _preview_text(message.text),
        attachment_count=0 if message.is_deleted else len(message.attachments),
        sent_at=message.created_at,
        deleted=message.is_deleted,
    )
    return preview.model_dump()


DOCUMENTS: tuple[type[TenantDocument], ...] = (Conversation, Message, Reaction, ReadReceipt)
