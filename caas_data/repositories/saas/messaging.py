"""Repositories of the messaging domain: conversations, messages, reactions, read receipts.

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
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pymongo
from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from caas_data.documents.base import utcnow
from caas_data.documents.saas.messaging import (
    MAX_EDITS_KEPT,
    MAX_PARTICIPANTS,
    Attachment,
    Conversation,
    ConversationKind,
    Message,
    MessageEdit,
    Reaction,
    ReadReceipt,
    direct_key,
    preview_of,
)
from caas_data.documents.saas.users import User
from caas_data.engine.cutoffs import retention_cutoff
from caas_data.engine.guard import GuardedCollection
from caas_data.engine.sessions import current_session
from caas_data.engine.writes import dump_document, insert_document, raise_write_miss
from caas_data.errors import (
    CaasDataError,
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    RetryableError,
)
from caas_data.repositories.base import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Repository,
    check_int,
)
from caas_data.repositories.counters import CounterRepository
from caas_data.repositories.saas.search import search_terms
from caas_data.repositories.saas.seq_windows import seq_windows

if TYPE_CHECKING:
    from caas_data.engine.layer import DataLayer

__all__ = [
    "UNKNOWN_SENDER",
    "ConversationRepository",
    "ConversationSummary",
    "HistoryPage",
    "InboxPage",
    "MessageRepository",
    "ReactionCount",
    "ReactionRepository",
    "ReadReceiptRepository",
    "run_contended_transaction",
]

T = TypeVar("T")

# Fields the layer stamps itself; an upsert's $setOnInsert must leave them to the guard.
_LAYER_FIELDS = ("_id", "tenant_id", "__v", "created_at", "updated_at")
_CONTENDED_DEADLINE_SECONDS = 60.0
UNKNOWN_SENDER = PydanticObjectId("0" * 24)
"""The sender of a tombstone `fill_gaps()` put under a number nobody claimed."""
_SEQ_STEALS = 5  # a send renumbered this often by fill_gaps() gives up (never seen)


# -- shared helpers ----------------------------------------------------------------------


def _in_transaction() -> bool:
    session = current_session()
    return session is not None and session.in_transaction


def _is_transient(error: RetryableError) -> bool:
    driver = error.driver_error
    return isinstance(driver, PyMongoError) and driver.has_error_label("TransientTransactionError")


_local_queues: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = weakref.WeakValueDictionary()
_client_id_locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


async def run_contended_transaction(
    layer: DataLayer,
    callback: Callable[[], Awaitable[T]],
    *,
    queue_key: Hashable | None = None,
) -> T:
    """`layer.run_transaction`, retried with jittered backoff, for hot documents.

    Fifty senders in one conversation all write its counter. Tasks of this process that give
    the same `queue_key` take turns on a local lock, so write conflicts (and their wasted
    server work) only come from other processes; those are retried with "full jitter" so the
    losers do not retry in lockstep. Inside a caller's transaction the callback joins it once
    and the caller's own retry applies.
    """
    if _in_transaction():
        return await callback()
    if queue_key is None:
        return await _retry_transient(layer, callback)
    key = (id(layer), queue_key)
    queue = _local_queues.get(key)
    if queue is None:
        queue = _local_queues[key] = asyncio.Lock()
    async with queue:
        return await _retry_transient(layer, callback)


async def _retry_transient(layer: DataLayer, callback: Callable[[], Awaitable[T]]) -> T:
    deadline = time.monotonic() + _CONTENDED_DEADLINE_SECONDS
    attempt = 0
    while True:
        attempt += 1
        try:
            return await layer.run_transaction(callback, max_attempts=1)
        except RetryableError as exc:
            if not _is_transient(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(random.uniform(0, min(0.25, 0.004 * 2 ** min(attempt, 8))))


def _object_id(value: Any, name: str) -> PydanticObjectId:
    if isinstance(value, ObjectId):
        return PydanticObjectId(value)
    if isinstance(value, str) and ObjectId.is_valid(value):
        return PydanticObjectId(value)
    raise DocumentValidationError(f"{name} must be an ObjectId, got {value!r}", fields=(name,))


def _object_ids(values: Iterable[Any], name: str) -> list[PydanticObjectId]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise DocumentValidationError(f"{name} must be a list of ids", fields=(name,))
    return [_object_id(value, name) for value in values]


def _stored_id(document: Any) -> PydanticObjectId:
    """The id of a document read from the database (always set)."""
    assert document.id is not None, "document was never stored"
    return PydanticObjectId(document.id)


async def _upsert(
    collection: GuardedCollection, key: Mapping[str, Any], update: Mapping[str, Any]
) -> dict[str, Any]:
    """Update-or-insert one document by a unique key; returns it as stored.

    Two first upserts of one key can race on the unique index; the loser retries and then
    matches the winner's document. Inside a transaction the error aborts it, so it is raised.
    """
    for attempt in (1, 2, 3):
        try:
            raw: dict[str, Any] | None = await collection.find_one_and_update(
                dict(key), dict(update), upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateError:
            if attempt == 3 or _in_transaction():
                raise
            continue
        if raw is None:
            # Measured: the embedded server sometimes answers null to a concurrent upsert
            # that did write; the document is there to read.
            raw = await collection.find_one(dict(key))
        if raw is not None:
            return raw
    raise NotFoundError(f"upsert of {dict(key)} returned no document")


def _tombstone(
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


def _insert_fields(document: Any) -> dict[str, Any]:
    """A new document's fields for `$setOnInsert`: all but the layer-owned ones."""
    data = dump_document(document)
    return {k: v for k, v in data.items() if k not in _LAYER_FIELDS}


def _typed(value: Any, bson_type: str) -> dict[str, Any]:
    """An equality the planner can match to a `{$type: ...}` partial index.

    MongoDB does not infer that `{f: "x"}` satisfies `partialFilterExpression
    {f: {$type: "string"}}`, and would scan instead; spelling the type out lets it use the index.
    """
    return {"$eq": value, "$type": bson_type}


# -- conversations -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A conversation in a user's list, with what the user has not read yet."""

    conversation: Conversation
    unread_count: int


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of a user's conversation list, latest activity first."""

    items: list[ConversationSummary]
    next_cursor: str | None

    def __iter__(self) -> Iterator[ConversationSummary]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class ConversationRepository(Repository[Conversation]):
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
        a, b = _object_id(user_a, "user_a"), _object_id(user_b, "user_b")
        try:
            key = direct_key(a, b)
        except ValueError as exc:
            raise DocumentValidationError(str(exc), fields=("user_b",)) from exc
        found = await self.find_one({"direct_key": _typed(key, "string")})
        if found is not None:
            return found
        await self._require_users([a, b])
        low, high = sorted((a, b), key=str)
        new = Conversation(
            kind=ConversationKind.DIRECT, participant_ids=[low, high], direct_key=key
        )
        raw = await _upsert(
            self.collection(),
            {"direct_key": _typed(key, "string")},
            {"$setOnInsert": _insert_fields(new)},
        )
        return self._load(raw)

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
        group = _object_id(group_id, "group_id")
        found = await self.find_one({"group_id": _typed(group, "objectId")})
        if found is not None:
            return found
        members = _object_ids(participant_ids, "participant_ids")
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
        raw = await _upsert(
            self.collection(),
            {"group_id": _typed(group, "objectId")},
            {"$setOnInsert": _insert_fields(new)},
        )
        return self._load(raw)

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
        users = _object_ids(user_ids, "user_ids")
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
        key = _object_id(conversation_id, "conversation_id")
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

    async def require_participant(
        self, conversation_id: PydanticObjectId, user_id: PydanticObjectId
    ) -> Conversation:
        """The conversation, checked to include `user_id`.

        Raises:
            NotFoundError: no such conversation.
            DocumentValidationError: the user is not a participant.
        """
        conversation = await self.get(_object_id(conversation_id, "conversation_id"))
        if _object_id(user_id, "user_id") not in conversation.participant_ids:
            raise DocumentValidationError(
                f"user {user_id} is not a participant of conversation {conversation_id}",
                fields=("user_id",),
                document_type=Conversation,
            )
        return conversation

    async def inbox(
        self, user_id: PydanticObjectId, *, limit: int = 20, after: str | None = None
    ) -> InboxPage:
        """A page of `user_id`'s conversations, latest activity first, with unread counts.

        Two queries per page: the conversations (index `tenant_participant_activity`) and the
        user's receipts for them. A conversation that moves up while paging may show twice.
        """
        user = _object_id(user_id, "user_id")
        page = await self.find(
            {"participant_ids": user}, sort="-last_message_at", limit=limit, after=after
        )
        receipts = self.layer.repo(ReadReceiptRepository)
        marks = await receipts.watermarks(user, [_stored_id(c) for c in page.items])
        items = [
            ConversationSummary(c, max(0, c.last_seq - marks.get(_stored_id(c), 0)))
            for c in page.items
        ]
        return InboxPage(items, page.next_cursor)

    async def unread_count(
        self, conversation_id: PydanticObjectId, user_id: PydanticObjectId
    ) -> int:
        """Messages after the user's read watermark (no message is scanned)."""
        conversation = await self.require_participant(conversation_id, user_id)
        receipts = self.layer.repo(ReadReceiptRepository)
        mark = await receipts.watermark(_stored_id(conversation), _object_id(user_id, "user_id"))
        return max(0, conversation.last_seq - mark)

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


# -- messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Messages of one conversation in `seq` order (oldest first), deleted ones as tombstones.

    Ask for older ones with `before=page.oldest_seq`, newer ones with `after=page.newest_seq`;
    `has_more` says whether the server holds more in the direction asked.
    """

    items: list[Message]
    has_more: bool

    @property
    def oldest_seq(self) -> int | None:
        """The smallest `seq` on the page."""
        return self.items[0].seq if self.items else None

    @property
    def newest_seq(self) -> int | None:
        """The largest `seq` on the page."""
        return self.items[-1].seq if self.items else None

    def __iter__(self) -> Iterator[Message]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class MessageRepository(Repository[Message]):
    """Send, page, edit, soft-delete (restorable by the sender) and purge messages."""

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
        conversation = _object_id(conversation_id, "conversation_id")
        sender = _object_id(sender_id, "sender_id")
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
        if _in_transaction():
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
            key = (id(self.layer), self._queue_key(conversation), client_message_id)
            lock = _client_id_locks.get(key)
            if lock is None:
                lock = _client_id_locks[key] = asyncio.Lock()
            async with lock:
                earlier = await self._by_client_id(conversation, client_message_id)
                if earlier is not None:
                    return await self._publish(earlier)  # finish what the first attempt began
                return await self._send_once(draft)

    async def _send_once(self, draft: Message) -> Message:
        """`send` outside a transaction, once its client id is known to be new."""
        conversation, sender = draft.conversation_id, draft.sender_id
        await self._check_references(draft)
        await self.layer.repo(ConversationRepository).require_participant(conversation, sender)
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
        tombstone = _tombstone(message.conversation_id, message.seq, message.sender_id)
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
        conversation = _object_id(conversation_id, "conversation_id")
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
            tombstone = _tombstone(conversation, seq, None)
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
            await self.layer.repo(ConversationRepository).require_participant(
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
                "client_message_id": _typed(client_message_id, "string"),
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

    # -- reads ----------------------------------------------------------------------

    def _history_query(
        self, conversation_id: PydanticObjectId, before: int | None, after: int | None
    ) -> tuple[dict[str, Any], list[tuple[str, int]]]:
        if before is not None and after is not None:
            raise DocumentValidationError(
                "give before= or after=, not both", fields=("before", "after")
            )
        for name, seq in (("before", before), ("after", after)):
            if seq is not None:
                check_int(name, seq)
        query: dict[str, Any] = {"conversation_id": _object_id(conversation_id, "conversation_id")}
        if before is not None:
            query["seq"] = {"$lt": before}
        elif after is not None:
            query["seq"] = {"$gt": after}
        return query, [("seq", 1 if after is not None else -1)]

    async def history(
        self,
        conversation_id: PydanticObjectId,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        viewer_id: PydanticObjectId | None = None,
    ) -> HistoryPage:
        """A page of a conversation: the newest, or the one just before/after a `seq`.

        Served by the index `{tenant_id, conversation_id, seq}` (see `explain_history`).
        Deleted messages stay in place as tombstones, except for their sender (`viewer_id`).
        """
        check_int("limit", limit, minimum=1, maximum=MAX_PAGE_SIZE)
        query, sort = self._history_query(conversation_id, before, after)
        return await self._seq_page(query, sort, limit, viewer_id, window=(before, after))

    async def thread(
        self,
        thread_root_id: PydanticObjectId,
        *,
        after: int | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        viewer_id: PydanticObjectId | None = None,
    ) -> HistoryPage:
        """Replies in a thread, oldest first, from just after `after` (a `seq`)."""
        check_int("limit", limit, minimum=1, maximum=MAX_PAGE_SIZE)
        if after is not None:
            check_int("after", after)
        root = _object_id(thread_root_id, "thread_root_id")
        query: dict[str, Any] = {"thread_root_id": _typed(root, "objectId")}
        if after is not None:
            query["seq"] = {"$gt": after}
        return await self._seq_page(query, [("seq", 1)], limit, viewer_id)

    async def _seq_page(
        self,
        query: dict[str, Any],
        sort: list[tuple[str, int]],
        limit: int,
        viewer_id: PydanticObjectId | None,
        *,
        window: tuple[int | None, int | None] | None = None,
    ) -> HistoryPage:
        """One page; with `window` (before, after) read in bounded seq windows."""
        collection = self.collection(include_deleted=True)

        async def fetch(page_query: dict[str, Any], count: int) -> list[Any]:
            with self._errors(collection):
                found = collection.find(page_query, sort=sort, limit=count)
                return await found.to_list(count)

        if window is None:
            raws = await fetch(query, limit + 1)
        else:
            conversation = query["conversation_id"]
            base = {k: v for k, v in query.items() if k != "seq"}
            raws = await seq_windows(
                fetch, base, before=window[0], after=window[1], want=limit + 1,
                top=lambda: self.layer.repo(CounterRepository).current(
                    self.counter_key(conversation)
                ),
            )  # fmt: skip
        items = [message.viewed_by(viewer_id) for message in self._load_many(raws[:limit])]
        if sort[0][1] == -1:
            items.reverse()
        return HistoryPage(items, has_more=len(raws) > limit)

    async def explain_history(
        self,
        conversation_id: PydanticObjectId,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> dict[str, Any]:
        """The server's plan for the query `history()` sends (diagnostics, index checks)."""
        check_int("limit", limit, minimum=1, maximum=MAX_PAGE_SIZE)
        query, sort = self._history_query(conversation_id, before, after)
        windows: list[dict[str, Any]] = []

        async def record(page_query: dict[str, Any], count: int) -> list[Any]:
            windows.append(page_query)
            return []

        base = {k: v for k, v in query.items() if k != "seq"}
        key = self.counter_key(query["conversation_id"])
        await seq_windows(
            record, base, before=before, after=after, want=limit + 1,
            top=lambda: self.layer.repo(CounterRepository).current(key),
        )  # fmt: skip
        collection = self.collection(include_deleted=True)
        with self._errors(collection):
            plan: dict[str, Any] = await collection.find(
                windows[0], sort=sort, limit=limit + 1
            ).explain()
        return plan

    async def view(
        self, message_id: PydanticObjectId, *, viewer_id: PydanticObjectId | None
    ) -> Message:
        """One message as `viewer_id` sees it (a tombstone if deleted and not theirs)."""
        message = await self.get(message_id, include_deleted=True)
        return message.viewed_by(viewer_id)

    # -- changes ----------------------------------------------------------------------

    async def edit(
        self, message: Message, text: str | None, *, editor_id: PydanticObjectId
    ) -> Message:
        """Replace the text of `message`, as read at its version; keeps the previous text.

        The last `MAX_EDITS_KEPT` previous texts stay on the message (`edits`), with the
        total in `edit_count`: the history is read with the message and its size is bounded.

        Raises:
            VersionConflict: the message changed since `message` was read.
            DocumentValidationError: the editor is not the sender, or the new content is bad.
            NotFoundError: the message is gone or deleted.
        """
        if _object_id(editor_id, "editor_id") != message.sender_id:
            raise DocumentValidationError(
                f"only the sender can edit message {message.id}", fields=("editor_id",)
            )
        if message.is_deleted:
            raise NotFoundError(f"message {message.id} is deleted", document_type=Message)
        if text == message.text:
            return message
        now = utcnow()
        entry = MessageEdit(text=message.text, edited_at=now)
        edited = self._validate(
            {
                **message.model_dump(),
                "text": text,
                "terms": search_terms(text),
                "edited_at": now,
                "edit_count": message.edit_count + 1,
                "edits": [*message.edits, entry][-MAX_EDITS_KEPT:],
                "version": message.version + 1,
                "updated_at": now,
            }
        )

        async def apply() -> Message:
            collection = self.collection()
            result = await collection.update_one(
                {"_id": message.id, "__v": message.version, "sender_id": message.sender_id},
                {
                    "$set": {"text": text, "terms": edited.terms, "edited_at": now},
                    "$inc": {"edit_count": 1},
                    "$push": {"edits": {"$each": [entry.model_dump()], "$slice": -MAX_EDITS_KEPT}},
                },
                stamp_time=now,
            )
            if result.matched_count != 1:
                await raise_write_miss(collection, Message, message.id, message.version)
            await self._refresh_preview(edited)
            return edited

        return await run_contended_transaction(
            self.layer, apply, queue_key=self._queue_key(message.conversation_id)
        )

    async def soft_delete(self, document_or_id: Any, *, deleted_by: Any = None) -> Message:
        """Delete for everyone ("message deleted"); the sender can `restore` it.

        The conversation's preview turns into a tombstone when this was its last message.
        """
        base = super().soft_delete

        async def apply() -> Message:
            deleted = await base(document_or_id, deleted_by=deleted_by)
            await self._refresh_preview(deleted)
            return deleted

        return await run_contended_transaction(self.layer, apply)

    async def restore(self, document_or_id: Any, *, by: Any = None) -> Message:
        """Undo a delete; only the sender (`by`) may.

        Raises:
            DocumentValidationError: `by` is missing or is not the sender.
            NotFoundError: the message does not exist (any more).
        """
        if by is None:
            raise DocumentValidationError(
                "say who restores the message (by=): only its sender may", fields=("by",)
            )
        restorer = _object_id(by, "by")
        message = await self.get(document_or_id, include_deleted=True)
        if message.sender_id != restorer:
            raise DocumentValidationError(
                f"only the sender ({message.sender_id}) can restore message {message.id}, "
                f"not {restorer}",
                fields=("by",),
            )
        base = super().restore

        async def apply() -> Message:
            restored = await base(message.id)
            await self._refresh_preview(restored)
            return restored

        return await run_contended_transaction(
            self.layer, apply, queue_key=self._queue_key(message.conversation_id)
        )

    async def _refresh_preview(self, message: Message) -> None:
        """Copy `message` onto its conversation's preview, if it is the last message there."""
        await self.layer.collection(Conversation).update_one(
            {"_id": message.conversation_id, "last_message.message_id": message.id},
            {"$set": {"last_message": preview_of(message)}},
        )

    # -- hard deletes ----------------------------------------------------------------

    async def purge(self, document_or_id: Any) -> None:
        """Delete one message for good, with its reactions."""
        document_id = self._id(document_or_id)
        if await self._purge_ids([document_id]) != 1:
            raise NotFoundError(f"message {document_id} not found", document_type=Message)

    async def purge_before(self, cutoff: datetime, *, batch_size: int = 500) -> int:
        """Retention: delete for good the messages created before `cutoff`, batch by batch.

        Each batch (oldest first) removes the messages' reactions, then the messages, so an
        interrupted run leaves nothing orphaned and can simply be run again.
        Returns how many messages were deleted.

        Raises:
            DocumentValidationError: `cutoff` is naive or in the future (before any I/O).
        """
        cutoff = retention_cutoff(cutoff)
        check_int("batch_size", batch_size, minimum=1, maximum=10_000)
        collection = self.collection(include_deleted=True)
        total = 0
        while True:
            with self._errors(collection):
                batch = await collection.find(
                    {"created_at": {"$lt": cutoff}},
                    {"_id": 1},
                    sort=[("created_at", 1)],
                    limit=batch_size,
                ).to_list(batch_size)
            if not batch:
                return total
            total += await self._purge_ids([raw["_id"] for raw in batch])
            if len(batch) < batch_size:
                return total

    async def _purge_ids(self, ids: list[Any]) -> int:
        await self.layer.collection(Reaction).delete_many({"message_id": {"$in": ids}})
        result = await self.collection(include_deleted=True).delete_many({"_id": {"$in": ids}})
        return int(result.deleted_count)


# -- read receipts -------------------------------------------------------------------


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
        conversations = self.layer.repo(ConversationRepository)
        conversation = await conversations.require_participant(conversation_id, user_id)
        return await self.advance(
            _stored_id(conversation),
            _object_id(user_id, "user_id"),
            min(seq, conversation.last_seq),
        )

    async def advance(
        self, conversation_id: PydanticObjectId, user_id: PydanticObjectId, seq: int
    ) -> ReadReceipt:
        """Move the watermark to `seq` if that is further; no membership check (`mark_read`)."""
        check_int("seq", seq)
        raw = await _upsert(
            self.collection(),
            {"conversation_id": conversation_id, "user_id": user_id},
            {
                "$max": {"last_read_seq": seq, "read_at": utcnow()},
                "$setOnInsert": {"schema_version": 1},
            },
        )
        return self._load(raw)

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


# -- reactions -----------------------------------------------------------------------


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
        user = _object_id(user_id, "user_id")
        message = await self.layer.repo(MessageRepository).get(_object_id(message_id, "message_id"))
        new = self._validate(
            {
                "message_id": message.id,
                "conversation_id": message.conversation_id,
                "user_id": user,
                "emoji": emoji,
            }
        )
        await self.layer.repo(ConversationRepository).require_participant(
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
        message = _object_id(message_id, "message_id")
        return (await self.summaries([message], viewer_id=viewer_id)).get(message, [])

    async def summaries(
        self,
        message_ids: Sequence[PydanticObjectId],
        *,
        viewer_id: PydanticObjectId | None = None,
    ) -> dict[PydanticObjectId, list[ReactionCount]]:
        """Reaction counts of several messages (e.g. a history page) in one aggregation."""
        ids = _object_ids(message_ids, "message_ids")
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
