"""The send path of messages: gap-free, duplicate-free `seq`s without a transaction.

Sending holds no lock across round trips: the conversation's next `seq` is taken from its
counter by one atomic statement (nothing stays locked after it, whatever happens to the
connection), then the message is inserted with an id chosen before the number was taken,
then the conversation's preview and the sender's read watermark move (both `$max`, so
repeating them is harmless). Every step is idempotent and retried inside the operation
budget. A send that fails after its number was taken fills that number with a tombstone (a
deleted placeholder with the same id, so a message that did land wins), and `fill_gaps()`
fills numbers whose sender could not (server unreachable for the whole budget, or the process
died): sequences stay gap-free and duplicate-free. Inside a caller's unit of work a send
joins the transaction instead.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import suppress
from datetime import timedelta
from typing import Any, TypeVar

import pymongo
from beanie import PydanticObjectId

from caas_data.documents.base import utcnow
from caas_data.documents.saas.messaging import Attachment, Conversation, Message, preview_of
from caas_data.documents.writes import insert_document
from caas_data.engine.transactions import in_transaction, keyed_lock
from caas_data.errors import (
    CaasDataError,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    RetryableError,
)
from caas_data.repositories.base import Repository
from caas_data.repositories.counters import CounterRepository
from caas_data.repositories.saas.participants import ConversationParticipants
from caas_data.repositories.saas.receipts import ReadReceiptRepository
from caas_data.repositories.saas.search import search_terms
from caas_data.repositories.values import parse_id, typed_equality

__all__ = ["UNKNOWN_SENDER", "MessageSending", "tombstone_of"]

T = TypeVar("T")


UNKNOWN_SENDER = PydanticObjectId("0" * 24)
"""The sender of a tombstone `fill_gaps()` put under a number nobody claimed."""
_SEQ_STEALS = 5  # a send renumbered this often by fill_gaps() gives up (never seen)


def tombstone_of(
    conversation_id: PydanticObjectId, seq: int, sender_id: PydanticObjectId | None
) -> dict[str, Any]:
    """A deleted placeholder for a number whose send failed: history shows it as deleted.

    `fill_gaps()` does not know who took the number: its tombstones name `UNKNOWN_SENDER`.
    """
    now = utcnow()
    return {
        "conversation_id": conversation_id,
        "seq": seq,
        "sender_id": UNKNOWN_SENDER if sender_id is None else sender_id,
        "text": None,
        "attachments": [],
        "client_message_id": None,
        "terms": [],
        "deleted_at": now,
        "deleted_by": None,
        "__v": 0,
        "created_at": now,
        "updated_at": now,
        "schema_version": 1,
    }


class MessageSending(Repository[Message]):
    """Sending messages: the part of `MessageRepository` that numbers and inserts them."""

    document_type = Message

    @staticmethod
    def counter_key(conversation_id: PydanticObjectId) -> str:
        """The counter that numbers a conversation's messages."""
        return f"conv:{conversation_id}"

    async def send(
        self,
        conversation_id: PydanticObjectId,
        sender_id: PydanticObjectId,
        *,
        text: str | None = None,
        attachments: Sequence[Attachment | Mapping[str, Any]] = (),
        reply_to_id: PydanticObjectId | None = None,
        thread_root_id: PydanticObjectId | None = None,
        client_message_id: str | None = None,
    ) -> Message:
        """Append a message to a conversation; returns it with its `seq`.

        A send repeated with the same `client_message_id` returns the first message (safe to
        retry after a `RetryableError`).

        Raises:
            DocumentValidationError: bad content, a reference to another conversation, or the
                sender is not a participant.
            NotFoundError: the conversation, or a referenced message, does not exist.
        """
        conversation = parse_id(conversation_id, "conversation_id")
        sender = parse_id(sender_id, "sender_id")
        draft = self._validate(
            {
                "conversation_id": conversation,
                "seq": 1,  # placeholder, allocated in the transaction
                "sender_id": sender,
                "text": text,
                "attachments": list(attachments),
                "reply_to_id": reply_to_id,
                "thread_root_id": thread_root_id,
                "client_message_id": client_message_id,
                "terms": search_terms(text),
            }
        )
        if in_transaction():
            if client_message_id is not None:
                earlier = await self._by_client_id(conversation, client_message_id)
                if earlier is not None:
                    return earlier
            await self._check_references(draft)
            return await self._append(draft)
        # All the round trips and retries of one send share one operation budget.
        with pymongo.timeout(self.layer.settings.operation_timeout_ms / 1000):
            if client_message_id is None:
                return await self._send_once(draft)
            # Repeats of one client id in this process wait for the first instead of racing
            # it (between processes the unique index settles it: `_append_untransacted`).
            key = (self._queue_key(conversation), client_message_id)
            async with keyed_lock(self.layer, key):
                earlier = await self._by_client_id(conversation, client_message_id)
                if earlier is not None:
                    return await self._publish(earlier)  # finish what the first attempt began
                return await self._send_once(draft)

    async def _send_once(self, draft: Message) -> Message:
        """`send` outside a transaction, once its client id is known to be new."""
        conversation, sender = draft.conversation_id, draft.sender_id
        await self._check_references(draft)
        await self.layer.repo(ConversationParticipants).require_participant(conversation, sender)
        for _ in range(_SEQ_STEALS):
            landed = await self._append_untransacted(draft)
            if landed is not None:
                return await self._publish(landed)
        raise RetryableError(
            f"send to {conversation}: its number was filled by fill_gaps() {_SEQ_STEALS} times",
            document_type=Message,
        )

    async def _append_untransacted(self, draft: Message) -> Message | None:
        """Take a number, insert the message under it; None if a gap filler took the number.

        Raises what the insert raised once the number is filled (by the message if it did
        land after all, else by a tombstone).
        """
        message = draft.model_copy(update={"id": PydanticObjectId()})
        counters = self.layer.repo(CounterRepository)
        try:
            message.seq = await counters.allocate(self.counter_key(draft.conversation_id))
        except RetryableError:
            # The counter may have moved with its answer lost: nobody knows that number, so
            # fill every open number now (a sender still holding one takes another).
            with suppress(CaasDataError):
                await self.fill_gaps(draft.conversation_id, grace_seconds=0)
            raise
        try:
            await self._retrying(lambda: self._insert_new(message))
        except DuplicateError:
            stored = await self._by_client_id_or_none(message)
            if stored is not None:
                # The same client id raced itself: keep the first, give this number back.
                await self._fill(message)
                return stored
            if await self._seq_taken(message):
                return None  # fill_gaps() filled the number first: take another
            raise
        except CaasDataError:
            if await self._fill(message):
                raise
            return message  # the fill found the message itself: it landed after all
        return message

    async def _insert_new(self, message: Message) -> None:
        """Insert `message` (its id fixed), or find it already stored by an earlier attempt."""
        try:
            await insert_document(message, collection=self.collection())
        except DuplicateError:
            found = await self.collection(include_deleted=True).find_one(
                {"_id": message.id}, {"_id": 1}
            )
            if found is None:
                raise  # another key (client id, seq) is taken: the caller tells which

    async def _by_client_id_or_none(self, message: Message) -> Message | None:
        if message.client_message_id is None:
            return None
        return await self._by_client_id(message.conversation_id, message.client_message_id)

    async def _seq_taken(self, message: Message) -> bool:
        found = await self.collection(include_deleted=True).find_one(
            {"conversation_id": message.conversation_id, "seq": message.seq}, {"_id": 1}
        )
        return found is not None and found["_id"] != message.id

    async def _fill(self, message: Message) -> bool:
        """Put a tombstone under `message`'s number (same id); False if the message is there.

        Best effort within the operation budget: if even this cannot reach the server,
        `fill_gaps()` fills the number later.
        """
        tombstone = tombstone_of(message.conversation_id, message.seq, message.sender_id)
        tombstone["_id"] = message.id
        collection = self.collection(include_deleted=True)._privileged()

        async def write() -> bool:
            try:
                await collection.insert_one(tombstone)
            except DuplicateError:
                found = await collection.find_one({"_id": message.id}, {"deleted_at": 1})
                return found is None or found.get("deleted_at") is not None
            return True

        with suppress(RetryableError):
            return await self._retrying(write)
        return True

    async def _publish(self, message: Message) -> Message:
        """Move the conversation's preview and the sender's watermark up to `message`.

        Both are `$max` updates, so repeating them (a retried send) changes nothing.
        """

        async def publish() -> None:
            await self.layer.collection(Conversation).update_one(
                {"_id": message.conversation_id, "last_seq": {"$lt": message.seq}},
                {
                    "$max": {"last_seq": message.seq, "last_message_at": message.created_at},
                    "$set": {"last_message": preview_of(message)},
                },
            )
            await self.layer.repo(ReadReceiptRepository).advance(
                message.conversation_id, message.sender_id, message.seq
            )

        if message.deleted_at is None:
            await self._retrying(publish)
        return message

    async def _retrying(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent step, again after a `RetryableError`, within the budget."""
        deadline = time.monotonic() + self.layer.settings.operation_timeout_ms / 1000
        attempt = 0
        while True:
            try:
                return await step()
            except RetryableError:
                attempt += 1
                pause = random.uniform(0, min(0.5, 0.01 * 2**attempt))
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)

    async def fill_gaps(
        self, conversation_id: PydanticObjectId, *, grace_seconds: float | None = None
    ) -> list[int]:
        """Fill numbers that were taken but never got their message; returns them.

        A number is a gap once its sender's budget is over: a message with a later number
        landed more than `grace_seconds` ago (default: twice the operation budget), or the
        counter has not moved for that long. A sender still holding a filled number takes
        another one, so filling early costs a renumbering, never a duplicate.
        """
        conversation = parse_id(conversation_id, "conversation_id")
        grace = (
            2 * self.layer.settings.operation_timeout_ms / 1000
            if grace_seconds is None
            else grace_seconds
        )
        cutoff = utcnow() - timedelta(seconds=grace)
        counters = self.layer.repo(CounterRepository)
        top, moved_at = await counters.current_and_time(self.counter_key(conversation))
        stored = {
            raw["seq"]: raw["created_at"]
            async for raw in self.collection(include_deleted=True).find(
                {"conversation_id": conversation}, {"seq": 1, "created_at": 1}
            )
        }
        missing = sorted(set(range(1, top + 1)) - set(stored))
        quiet = moved_at is None or moved_at < cutoff
        filled = []
        for seq in missing:
            later_landed = any(s > seq and at < cutoff for s, at in stored.items())
            if not (quiet or later_landed):
                continue
            tombstone = tombstone_of(conversation, seq, None)
            with suppress(DuplicateError):  # its sender (or another filler) got there first
                await self.collection(include_deleted=True)._privileged().insert_one(tombstone)
                filled.append(seq)
        return filled

    def _queue_key(self, conversation_id: PydanticObjectId) -> Hashable:
        """Writers of one conversation's counter and preview, in this process."""
        return (self.collection().rules.tenant_id, conversation_id)

    async def _append(self, draft: Message) -> Message:
        """The transaction body of `send`."""
        counters = self.layer.repo(CounterRepository)
        seq = await counters.allocate(self.counter_key(draft.conversation_id))
        message = draft.model_copy(update={"seq": seq, "id": None})
        await insert_document(message, collection=self.collection())
        conversations = self.layer.collection(Conversation)
        result = await conversations.update_one(
            {"_id": message.conversation_id, "participant_ids": message.sender_id},
            {
                "$max": {"last_seq": seq, "last_message_at": message.created_at},
                "$set": {"last_message": preview_of(message)},
            },
        )
        if result.matched_count != 1:  # raising aborts: the seq goes back to the counter
            await self.layer.repo(ConversationParticipants).require_participant(
                message.conversation_id, message.sender_id
            )
            raise RetryableError("the conversation's members changed during the send: retry")
        await self.layer.repo(ReadReceiptRepository).advance(
            message.conversation_id, message.sender_id, seq
        )
        return message

    async def _by_client_id(
        self, conversation: PydanticObjectId, client_message_id: str
    ) -> Message | None:
        return await self.find_one(
            {
                "conversation_id": conversation,
                "client_message_id": typed_equality(client_message_id, "string"),
            },
            include_deleted=True,
        )

    async def _check_references(self, draft: Message) -> None:
        for name in ("reply_to_id", "thread_root_id"):
            target_id = getattr(draft, name)
            if target_id is None:
                continue
            target = await self.get_or_none(target_id, include_deleted=name == "reply_to_id")
            if target is None:
                raise NotFoundError(f"{name} {target_id}: no such message", document_type=Message)
            if target.conversation_id != draft.conversation_id:
                raise DocumentValidationError(
                    f"{name} {target_id} belongs to another conversation", fields=(name,)
                )
            if name == "thread_root_id" and target.thread_root_id is not None:
                raise DocumentValidationError(
                    f"message {target_id} is itself a thread reply: use its root "
                    f"{target.thread_root_id}",
                    fields=(name,),
                )
