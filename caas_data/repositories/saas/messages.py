"""Messages: a conversation's history and threads, edits, deletes and purges.

The send path is `MessageSending` (sending.py), which `MessageRepository` extends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import PydanticObjectId

from caas_data.documents.base import utcnow
from caas_data.documents.saas.messaging import (
    MAX_EDITS_KEPT,
    Conversation,
    Message,
    MessageEdit,
    Reaction,
    preview_of,
)
from caas_data.documents.writes import raise_write_miss
from caas_data.engine.transactions import transaction
from caas_data.errors import DocumentValidationError, NotFoundError
from caas_data.repositories.counters import CounterRepository
from caas_data.repositories.pages import Page, decode_cursor, encode_cursor, query_shape
from caas_data.repositories.saas.search import search_terms
from caas_data.repositories.saas.sending import MessageSending
from caas_data.repositories.saas.seq_windows import Fetch, seq_windows
from caas_data.repositories.values import (
    DEFAULT_PAGE_SIZE,
    check_int,
    check_limit,
    parse_id,
    typed_equality,
)
from caas_data.tenancy.cutoffs import retention_cutoff, retention_limit

__all__ = ["MessageRepository"]


class MessageRepository(MessageSending):
    """Send, page, edit, soft-delete (restorable by the sender) and purge messages."""

    # -- reads ----------------------------------------------------------------------

    async def history(
        self,
        conversation_id: PydanticObjectId,
        *,
        after: str | None = None,
        newer_than: int | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        viewer_id: PydanticObjectId | None = None,
    ) -> Page[Message]:
        """A page of a conversation, its items oldest first.

        Without `newer_than`: the newest messages, and `next_cursor` pages back in time.
        With `newer_than=seq`: the messages after that `seq` (catching up), and
        `next_cursor` pages forward. Served by the index `{tenant_id, conversation_id, seq}`
        (see `explain_history`). Deleted messages stay in place as tombstones, except for
        their sender (`viewer_id`).

        Raises:
            NotFoundError: the conversation does not exist (it is named).
            DocumentValidationError: a bad limit or seq, or a cursor of another query.
        """
        check_limit(limit)
        conversation = parse_id(conversation_id, "conversation_id")
        query, sort = self._history_query(conversation, newer_than)
        page = await self._seq_page("history", query, sort, limit, after, viewer_id)
        if not page.items:
            await self._require_exists(Conversation, conversation, "conversation")
        return page

    def _history_query(
        self, conversation: PydanticObjectId, newer_than: int | None
    ) -> tuple[dict[str, Any], list[tuple[str, int]]]:
        query: dict[str, Any] = {"conversation_id": conversation}
        if newer_than is None:
            return query, [("seq", -1)]
        query["seq"] = {"$gt": check_int("newer_than", newer_than)}
        return query, [("seq", 1)]

    async def thread(
        self,
        thread_root_id: PydanticObjectId,
        *,
        after: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        viewer_id: PydanticObjectId | None = None,
    ) -> Page[Message]:
        """Replies in a thread, oldest first; `next_cursor` pages forward.

        Raises:
            NotFoundError: the thread's root message does not exist.
        """
        check_limit(limit)
        root = parse_id(thread_root_id, "thread_root_id")
        query: dict[str, Any] = {"thread_root_id": typed_equality(root, "objectId")}
        page = await self._seq_page("thread", query, [("seq", 1)], limit, after, viewer_id)
        if not page.items:
            await self._require_exists(Message, root, "thread root message")
        return page

    async def _seq_page(
        self,
        kind: str,
        query: dict[str, Any],
        sort: list[tuple[str, int]],
        limit: int,
        after: str | None,
        viewer_id: PydanticObjectId | None,
    ) -> Page[Message]:
        """One page in `seq` order; items oldest first whatever the direction of paging."""
        paged, shape = self._paged(kind, query, sort, after)
        collection = self.collection(include_deleted=True)

        async def fetch(page_query: dict[str, Any], count: int) -> list[Any]:
            with self._errors(collection):
                found = collection.find(page_query, sort=sort, limit=count)
                return await found.to_list(count)

        if kind == "history":  # dense seqs per conversation: bounded windows (seq_windows.py)
            raws = await self._history_windows(fetch, paged, limit + 1)
        else:
            raws = await fetch(paged, limit + 1)
        items = [message.viewed_by(viewer_id) for message in self._load_many(raws[:limit])]
        next_cursor = None
        if len(raws) > limit:
            next_cursor = encode_cursor([raws[limit - 1]["seq"]], shape)
        if sort[0][1] == -1:
            items.reverse()
        return Page(items, next_cursor)

    async def _history_windows(self, fetch: Fetch, paged: dict[str, Any], want: int) -> list[Any]:
        """The history query `paged` read in bounded seq windows, in page order."""
        bounds = paged.get("seq", {})
        base = {k: v for k, v in paged.items() if k != "seq"}
        key = self.counter_key(paged["conversation_id"])
        return await seq_windows(
            fetch, base, before=bounds.get("$lt"), after=bounds.get("$gt"), want=want,
            top=lambda: self.layer.repo(CounterRepository).current(key),
        )  # fmt: skip

    @staticmethod
    def _paged(
        kind: str, query: dict[str, Any], sort: list[tuple[str, int]], after: str | None
    ) -> tuple[dict[str, Any], str]:
        """The query of the page after the cursor `after`, and the shape cursors carry.

        `seq` is unique within these queries, so the keyset is one bound merged into the
        query's own `seq` condition: no `$and`, which the embedded server answers by a scan.
        """
        shape = query_shape(kind, sort, query)
        if after is None:
            return query, shape
        ((name, direction),) = sort
        (last,) = decode_cursor(after, shape, 1)
        bound = {**query.get(name, {}), "$gt" if direction == 1 else "$lt": last}
        return {**query, name: bound}, shape

    async def _require_exists(self, document_type: type[Any], document_id: Any, name: str) -> None:
        collection = self.layer.collection(document_type)
        if await collection.find_one({"_id": document_id}, {"_id": 1}) is None:
            raise NotFoundError(
                f"{name} {document_id} does not exist",
                tenant_id=collection.rules.tenant_id,
                document_type=document_type,
            )

    async def explain_history(
        self,
        conversation_id: PydanticObjectId,
        *,
        after: str | None = None,
        newer_than: int | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
    ) -> dict[str, Any]:
        """The server's plan for the query `history()` sends (diagnostics, index checks)."""
        check_limit(limit)
        conversation = parse_id(conversation_id, "conversation_id")
        query, sort = self._history_query(conversation, newer_than)
        query, _ = self._paged("history", query, sort, after)
        windows: list[dict[str, Any]] = []

        async def record(page_query: dict[str, Any], count: int) -> list[Any]:
            windows.append(page_query)
            return []

        await self._history_windows(record, query, limit + 1)
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

    async def edit(self, message: Message, text: str | None, *, actor: PydanticObjectId) -> Message:
        """Replace the text of `message`, as read at its version; keeps the previous text.

        The last `MAX_EDITS_KEPT` previous texts stay on the message (`edits`), with the
        total in `edit_count`: the history is read with the message and its size is bounded.

        Raises:
            VersionConflict: the message changed since `message` was read.
            DocumentValidationError: the editor is not the sender, or the new content is bad.
            NotFoundError: the message is gone or deleted.
        """
        if parse_id(actor, "actor") != message.sender_id:
            raise DocumentValidationError(
                f"only the sender can edit message {message.id}", fields=("actor",)
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

        return await transaction(
            self.layer, apply, hot_key=self._queue_key(message.conversation_id)
        )

    async def soft_delete(self, document_or_id: Any, *, actor: Any = None) -> Message:
        """Delete for everyone ("message deleted"); the sender can `restore` it.

        The conversation's preview turns into a tombstone when this was its last message.
        """
        base = super().soft_delete

        async def apply() -> Message:
            deleted = await base(document_or_id, actor=actor)
            await self._refresh_preview(deleted)
            return deleted

        return await transaction(self.layer, apply)

    async def restore(self, document_or_id: Any, *, actor: Any = None) -> Message:
        """Undo a delete; only the sender (`actor`) may.

        Raises:
            DocumentValidationError: `actor` is missing or is not the sender.
            NotFoundError: the message does not exist (any more).
        """
        if actor is None:
            raise DocumentValidationError(
                "say who restores the message (actor=): only its sender may", fields=("actor",)
            )
        restorer = parse_id(actor, "actor")
        message = await self.get(document_or_id, include_deleted=True)
        if message.sender_id != restorer:
            raise DocumentValidationError(
                f"only the sender ({message.sender_id}) can restore message {message.id}, "
                f"not {restorer}",
                fields=("actor",),
            )
        base = super().restore

        async def apply() -> Message:
            restored = await base(message.id)
            await self._refresh_preview(restored)
            return restored

        return await transaction(
            self.layer, apply, hot_key=self._queue_key(message.conversation_id)
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

    async def purge_older_than(
        self, cutoff: datetime, *, limit: int | None = None, batch_size: int = 500
    ) -> int:
        """Retention: delete for good the messages created before `cutoff`, batch by batch.

        Each batch (oldest first) removes the messages' reactions, then the messages, so an
        interrupted run leaves nothing orphaned and can simply be run again. With `limit`, at
        most that many go (as for events and the audit trail); `batch_size` is per round trip.
        Returns how many messages were deleted.

        Raises:
            DocumentValidationError: `cutoff` is naive or in the future, or `limit` or
                `batch_size` is bad (before any I/O).
        """
        cutoff = retention_cutoff(cutoff)
        remaining = retention_limit(limit)
        check_int("batch_size", batch_size, minimum=1, maximum=10_000)
        collection = self.collection(include_deleted=True)
        total = 0
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            with self._errors(collection):
                batch = await collection.find(
                    {"created_at": {"$lt": cutoff}},
                    {"_id": 1},
                    sort=[("created_at", 1)],
                    limit=size,
                ).to_list(size)
            if not batch:
                return total
            deleted = await self._purge_ids([raw["_id"] for raw in batch])
            total += deleted
            if remaining is not None:
                remaining -= len(batch)
            if len(batch) < size:
                return total
        return total

    async def _purge_ids(self, ids: list[Any]) -> int:
        await self.layer.collection(Reaction).delete_many({"message_id": {"$in": ids}})
        result = await self.collection(include_deleted=True).delete_many({"_id": {"$in": ids}})
        return int(result.deleted_count)
