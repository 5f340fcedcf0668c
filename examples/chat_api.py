"""Chat API: a small FastAPI chat service on caas_data, one tenant scope per request.

Run it with one command (it installs the `examples` extra, with uvicorn, on first use):

    make chat-api

It starts the test server of `caas_data.testing` (CAAS_MONGODB_URI if set, else a MongoDB
container if Docker answers, else the embedded server), provisions three demo tenants, one
per isolation model (`acme-free`: shared collections, `globex-pro`: a collection set,
`initech-ent`: a database), serves on http://127.0.0.1:8000 (docs at /docs) and drops its
databases when stopped with Ctrl-C.

Who calls: the tenant comes from `X-Tenant-ID` and the acting user from `X-User-ID`, both
set by a trusted gateway that authenticated the caller (`tenant_from_trusted_header()`). A
service without such a gateway authenticates tenants by API key instead; see `create_app`.

    POST /users                                   create a user (someone to chat with)
    GET  /users                                   list users (?after=cursor)
    POST /conversations                           open a direct or create a group conversation
    GET  /conversations                           my inbox: unread counts, last-message preview
    POST /conversations/{id}/messages             send a message
    GET  /conversations/{id}/messages             history: newest page, ?before=seq, ?after=seq
    POST /conversations/{id}/read                 mark read up to a seq
    POST /messages/{id}/reactions                 toggle an emoji reaction

Tests build the app on a layer they own: `create_app(layer)`; `app` (connects to
CAAS_MONGODB_URI at start-up) serves with `uvicorn --app-dir examples chat_api:app`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from beanie import PydanticObjectId
from bson import ObjectId
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

import caas_data
from caas_data import DataLayer, DocumentValidationError, Tier, current_tenant_id
from caas_data.fastapi import (
    Principal,
    attach_layer,
    caas_lifespan,
    document_header,
    get_layer,
    install_error_handlers,
    repository,
    tenant_from_trusted_header,
)
from caas_data.repositories import INT64_MAX
from caas_data.repositories.saas.messaging import ReactionCount
from caas_data.saas import (
    Conversation,
    ConversationRepository,
    GroupRepository,
    Message,
    MessageRepository,
    ReactionRepository,
    ReadReceipt,
    ReadReceiptRepository,
    User,
    UserRepository,
)

TENANT_HEADER = "X-Tenant-ID"
USER_HEADER = "X-User-ID"
HOST, PORT = "127.0.0.1", 8000
DEMO_TENANTS = {"acme-free": Tier.FREE, "globex-pro": Tier.PRO, "initech-ent": Tier.ENTERPRISE}

TenantDependency = Callable[..., AsyncIterator[Principal]]
# The acting user's header: required in the OpenAPI schema, 401 when absent, 403 when unknown.
document_header(USER_HEADER, answers=(401, 403))


# -- request bodies (shapes only: the layer validates the values and answers 422) ---------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewUser(_Body):
    external_id: str
    display_name: str
    username: str | None = None
    email: str | None = None


class NewDirectConversation(_Body):
    kind: Literal["direct"]
    with_user_id: str


class NewGroupConversation(_Body):
    kind: Literal["group"]
    title: str
    participant_ids: list[str] = Field(description="The other members; the caller is added.")


NewConversation = Annotated[
    NewDirectConversation | NewGroupConversation, Field(discriminator="kind")
]


class NewMessage(_Body):
    text: str | None = None
    reply_to_id: str | None = None
    client_message_id: str | None = Field(
        default=None, description="Chosen by the client: a retried send returns the first one."
    )


class ReactionToggle(_Body):
    emoji: str


class ReadUpTo(_Body):
    seq: int


# -- response bodies: every one names the tenant it was read from --------------------------


class UserOut(BaseModel):
    id: str
    tenant_id: str
    external_id: str
    display_name: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=str(user.id),
            tenant_id=user.tenant_id,
            external_id=user.external_id,
            display_name=user.display_name,
            created_at=user.created_at,
        )


class UserPage(BaseModel):
    tenant_id: str
    items: list[UserOut]
    next_cursor: str | None


class PreviewOut(BaseModel):
    message_id: str
    seq: int
    sender_id: str
    text: str | None
    attachment_count: int
    sent_at: datetime
    deleted: bool


class ConversationOut(BaseModel):
    id: str
    tenant_id: str
    kind: str
    title: str | None
    group_id: str | None
    participant_ids: list[str]
    last_seq: int
    last_message_at: datetime
    last_message: PreviewOut | None

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationOut:
        last = conversation.last_message
        return cls(
            id=str(conversation.id),
            tenant_id=conversation.tenant_id,
            kind=conversation.kind.value,
            title=conversation.title,
            group_id=_str(conversation.group_id),
            participant_ids=[str(p) for p in conversation.participant_ids],
            last_seq=conversation.last_seq,
            last_message_at=conversation.last_message_at,
            last_message=None
            if last is None
            else PreviewOut(
                message_id=str(last.message_id),
                seq=last.seq,
                sender_id=str(last.sender_id),
                text=last.text,
                attachment_count=last.attachment_count,
                sent_at=last.sent_at,
                deleted=last.deleted,
            ),
        )


class InboxItem(BaseModel):
    conversation: ConversationOut
    unread_count: int


class InboxOut(BaseModel):
    tenant_id: str
    user_id: str
    items: list[InboxItem]
    next_cursor: str | None


class ReactionOut(BaseModel):
    emoji: str
    count: int
    reacted: bool = Field(description="Whether the caller chose this emoji.")

    @classmethod
    def of(cls, count: ReactionCount) -> ReactionOut:
        return cls(emoji=count.emoji, count=count.count, reacted=count.reacted)


class MessageOut(BaseModel):
    id: str
    tenant_id: str
    conversation_id: str
    seq: int
    sender_id: str
    text: str | None
    reply_to_id: str | None
    client_message_id: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    reactions: list[ReactionOut] = Field(default_factory=list)

    @classmethod
    def of(cls, message: Message, reactions: list[ReactionCount] | None = None) -> MessageOut:
        return cls(
            id=str(message.id),
            tenant_id=message.tenant_id,
            conversation_id=str(message.conversation_id),
            seq=message.seq,
            sender_id=str(message.sender_id),
            text=message.text,
            reply_to_id=_str(message.reply_to_id),
            client_message_id=message.client_message_id,
            created_at=message.created_at,
            edited_at=message.edited_at,
            deleted=message.is_deleted,
            reactions=[ReactionOut.of(r) for r in reactions or []],
        )


class HistoryOut(BaseModel):
    tenant_id: str
    conversation_id: str
    items: list[MessageOut] = Field(description="Oldest first.")
    next_cursor: str | None = Field(description="Pass as `after` for the next page.")
    has_more: bool = Field(description="More messages in the direction paged.")


class ReactionToggled(BaseModel):
    tenant_id: str
    message_id: str
    emoji: str
    present: bool = Field(description="Whether the caller's reaction is there after the toggle.")
    reactions: list[ReactionOut]


class ReceiptOut(BaseModel):
    tenant_id: str
    conversation_id: str
    user_id: str
    last_read_seq: int
    read_at: datetime

    @classmethod
    def of(cls, receipt: ReadReceipt) -> ReceiptOut:
        return cls(
            tenant_id=receipt.tenant_id,
            conversation_id=str(receipt.conversation_id),
            user_id=str(receipt.user_id),
            last_read_seq=receipt.last_read_seq,
            read_at=receipt.read_at,
        )


# -- helpers ----------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _oid(value: str, name: str) -> PydanticObjectId:
    """An id from the URL or body; a malformed one is the caller's error (422 naming it)."""
    if not ObjectId.is_valid(value):
        raise DocumentValidationError(f"{name} must be an id, got {value!r}", fields=(name,))
    return PydanticObjectId(value)


def _stored(document: Any) -> PydanticObjectId:
    assert document.id is not None, "document was never stored"
    return PydanticObjectId(document.id)


def _scope_tenant() -> str:
    tenant = current_tenant_id()
    assert tenant is not None, "handlers run inside the tenant dependency's scope"
    return tenant


@contextmanager
def _participants_only() -> Iterator[None]:
    """The repositories refuse non-participants as bad `user_id`s; over HTTP that is 403."""
    try:
        yield
    except DocumentValidationError as exc:
        if "user_id" in exc.fields:
            raise HTTPException(403, "not a participant of this conversation") from exc
        raise


# -- the app ----------------------------------------------------------------------------------


def create_app(
    layer_or_uri: DataLayer | str | None = None,
    *,
    database_prefix: str | None = None,
    tenant: TenantDependency | None = None,
) -> FastAPI:
    """The chat service.

    Args:
        layer_or_uri: a connected layer (tests: the app uses it and never closes it), or a
            URI to connect to at start-up (None: `CAAS_MONGODB_URI`), closed at shutdown.
        database_prefix: with a URI, the layer's database prefix (default `caas`).
        tenant: the dependency that resolves each request's tenant and runs the request in
            its scope. Default: `tenant_from_trusted_header("X-Tenant-ID")`, for a service
            behind a gateway that authenticates callers and strips that header from outside
            requests. Without such a gateway use the tenants' API keys (issued with
            `ApiKeyRepository.issue(name, scopes=["chat"])`, sent as `X-API-Key` or
            `Authorization: Bearer ...`)::

                create_app(layer, tenant=tenant_from_api_key(required_scopes=frozenset({"chat"})))
    """
    tenant_dependency = tenant or tenant_from_trusted_header(TENANT_HEADER)
    if isinstance(layer_or_uri, DataLayer):
        app = FastAPI(title="caas_data chat API")
        attach_layer(app, layer_or_uri)
    else:
        app = FastAPI(
            title="caas_data chat API",
            lifespan=caas_lifespan(uri=layer_or_uri, database_prefix=database_prefix),
        )
    install_error_handlers(app)

    # Every route runs in the tenant's scope: no header, 401 before any repository is made.
    tenant_dep = Depends(tenant_dependency)
    router = APIRouter(dependencies=[tenant_dep])
    layer_dep = Depends(get_layer)
    users_dep = Depends(repository(UserRepository))
    conversations_dep = Depends(repository(ConversationRepository))
    messages_dep = Depends(repository(MessageRepository))
    reactions_dep = Depends(repository(ReactionRepository))
    receipts_dep = Depends(repository(ReadReceiptRepository))

    async def acting_user(
        _: Principal = tenant_dep,  # resolved first: the tenant's scope is running
        user_id: str | None = Header(default=None, alias=USER_HEADER),
        users: UserRepository = users_dep,
    ) -> User:
        """The user the gateway says is calling: a live user of this tenant."""
        if not user_id:
            raise HTTPException(401, f"user credentials required ({USER_HEADER})")
        if not ObjectId.is_valid(user_id):
            raise HTTPException(401, f"{USER_HEADER} is not a user id")
        user = await users.get_or_none(user_id)
        if user is None:
            raise HTTPException(403, "unknown user for this tenant")
        return user

    me_dep = Depends(acting_user)

    @router.post("/users", status_code=201)
    async def create_user(body: NewUser, users: UserRepository = users_dep) -> UserOut:
        user = await users.create(body.model_dump(exclude_none=True))
        return UserOut.of(user)

    @router.get("/users")
    async def list_users(
        after: str | None = None,
        limit: int = Query(default=50, ge=1, le=200),
        users: UserRepository = users_dep,
    ) -> UserPage:
        page = await users.find(sort="external_id", limit=limit, after=after)
        return UserPage(
            tenant_id=_scope_tenant(),
            items=[UserOut.of(u) for u in page.items],
            next_cursor=page.next_cursor,
        )

    @router.post("/conversations", status_code=201)
    async def create_conversation(
        body: NewConversation,
        me: User = me_dep,
        layer: DataLayer = layer_dep,
    ) -> ConversationOut:
        conversations = layer.repo(ConversationRepository)
        my_id = _stored(me)
        if isinstance(body, NewDirectConversation):
            # One direct conversation per pair: opening it again returns the same one.
            other = _oid(body.with_user_id, "with_user_id")
            return ConversationOut.of(await conversations.open_direct(my_id, other))
        others = [_oid(p, "participant_ids") for p in body.participant_ids]
        members = list(dict.fromkeys([my_id, *others]))
        groups = layer.repo(GroupRepository)

        async def create() -> Conversation:
            # The group row and its conversation, linked both ways, in one transaction: an
            # unknown participant (404) leaves neither behind.
            group = await groups.create_with_members(
                name=body.title, owner_id=my_id, member_ids=others
            )
            conversation = await conversations.open_group(
                _stored(group), title=body.title, participant_ids=members, created_by=my_id
            )
            await groups.update(group, conversation_id=conversation.id)
            return conversation

        return ConversationOut.of(await layer.run_transaction(create))

    @router.get("/conversations")
    async def inbox(
        after: str | None = None,
        limit: int = Query(default=20, ge=1, le=100),
        me: User = me_dep,
        conversations: ConversationRepository = conversations_dep,
    ) -> InboxOut:
        page = await conversations.inbox(_stored(me), limit=limit, after=after)
        return InboxOut(
            tenant_id=_scope_tenant(),
            user_id=str(me.id),
            items=[
                InboxItem(
                    conversation=ConversationOut.of(item.conversation),
                    unread_count=item.unread_count,
                )
                for item in page.items
            ],
            next_cursor=page.next_cursor,
        )

    @router.post("/conversations/{conversation_id}/messages", status_code=201)
    async def send_message(
        conversation_id: str,
        body: NewMessage,
        me: User = me_dep,
        messages: MessageRepository = messages_dep,
    ) -> MessageOut:
        reply_to = None if body.reply_to_id is None else _oid(body.reply_to_id, "reply_to_id")
        with _participants_only():
            message = await messages.send(
                _oid(conversation_id, "conversation_id"),
                _stored(me),
                text=body.text,
                reply_to_id=reply_to,
                client_message_id=body.client_message_id,
            )
        return MessageOut.of(message)

    @router.get("/conversations/{conversation_id}/messages")
    async def history(
        conversation_id: str,
        # Seqs are int64 on the server: a cursor outside 0..2**63-1 is the caller's 422.
        after: str | None = Query(
            default=None, description="The `next_cursor` of the previous page."
        ),
        newer_than: int | None = Query(
            default=None,
            ge=0,
            le=INT64_MAX,
            description="Page forward from this seq (catching up) instead of back from now.",
        ),
        limit: int = Query(default=50, ge=1, le=200),
        me: User = me_dep,
        conversations: ConversationRepository = conversations_dep,
        messages: MessageRepository = messages_dep,
        reactions: ReactionRepository = reactions_dep,
    ) -> HistoryOut:
        conversation = _oid(conversation_id, "conversation_id")
        with _participants_only():
            await conversations.require_participant(conversation, _stored(me))
        page = await messages.history(
            conversation, after=after, newer_than=newer_than, limit=limit, viewer_id=me.id
        )
        counts = await reactions.summaries([_stored(m) for m in page.items], viewer_id=me.id)
        return HistoryOut(
            tenant_id=_scope_tenant(),
            conversation_id=str(conversation),
            items=[MessageOut.of(m, counts.get(_stored(m))) for m in page.items],
            next_cursor=page.next_cursor,
            has_more=page.has_more,
        )

    @router.post("/conversations/{conversation_id}/read")
    async def mark_read(
        conversation_id: str,
        body: ReadUpTo,
        me: User = me_dep,
        receipts: ReadReceiptRepository = receipts_dep,
    ) -> ReceiptOut:
        with _participants_only():
            receipt = await receipts.mark_read(
                _oid(conversation_id, "conversation_id"), _stored(me), body.seq
            )
        return ReceiptOut.of(receipt)

    @router.post("/messages/{message_id}/reactions")
    async def react(
        message_id: str,
        body: ReactionToggle,
        me: User = me_dep,
        reactions: ReactionRepository = reactions_dep,
    ) -> ReactionToggled:
        message = _oid(message_id, "message_id")
        with _participants_only():
            present = await reactions.toggle(message, _stored(me), body.emoji)
        summary = await reactions.summary(message, viewer_id=me.id)
        return ReactionToggled(
            tenant_id=_scope_tenant(),
            message_id=str(message),
            emoji=body.emoji,
            present=present,
            reactions=[ReactionOut.of(r) for r in summary],
        )

    app.include_router(router)
    return app


# Served by `uvicorn --app-dir examples chat_api:app` against CAAS_MONGODB_URI.
app = create_app()


# -- `python examples/chat_api.py` ---------------------------------------------------------

UVICORN_MISSING = """\
uvicorn is not installed (it comes with the `examples` extra). Run instead:

    make chat-api

Without a server, tests drive the app in-process: httpx.AsyncClient(
transport=httpx.ASGITransport(app=create_app(layer))) (tests/integration/test_chat_api.py)."""

USAGE = """\
chat API on http://{host}:{port} (OpenAPI docs: /docs). Ctrl-C stops it. Try:

  H='-H X-Tenant-ID:{tenant} -H Content-Type:application/json'
  curl $H -d '{{"external_id": "ada", "display_name": "Ada"}}' {base}/users
  curl $H -d '{{"external_id": "bo", "display_name": "Bo"}}' {base}/users
  curl $H -H X-User-ID:<ada id> -d '{{"kind": "direct", "with_user_id": "<bo id>"}}' \\
       {base}/conversations
  curl $H -H X-User-ID:<ada id> -d '{{"text": "hello Bo"}}' {base}/conversations/<id>/messages
  curl $H -H X-User-ID:<bo id> {base}/conversations
  curl $H -H X-User-ID:<bo id> '{base}/conversations/<id>/messages?after=0'

Tenants: {tenants}"""


async def serve(uri: str, database_prefix: str, server: Any) -> None:
    """Connect, provision the demo tenants, serve until stopped, drop the databases."""
    from caas_data.testing import drop_prefix_databases

    layer = await caas_data.connect(uri, database_prefix=database_prefix)
    try:
        for tenant_id, tier in DEMO_TENANTS.items():
            await layer.tenants.provision(tenant_id, tier=tier)  # again: harmless
        config = server.Config(create_app(layer), host=HOST, port=PORT, log_level="info")
        tenants = ", ".join(f"{t} ({tier})" for t, tier in DEMO_TENANTS.items())
        print(
            USAGE.format(
                host=HOST,
                port=PORT,
                base=f"http://{HOST}:{PORT}",
                tenant=next(iter(DEMO_TENANTS)),
                tenants=tenants,
            ),
            flush=True,
        )
        await server.Server(config).serve()
    finally:
        await drop_prefix_databases(layer)
        await layer.close()


def main() -> int:
    try:
        import uvicorn
    except ImportError:
        print(UVICORN_MISSING, file=sys.stderr)
        return 2
    from caas_data.testing import new_prefix, start_test_server

    test_server = start_test_server()
    try:
        print(f"database server: {test_server.handle.description}", flush=True)
        # The embedded server lives in memory: the real prefix. Elsewhere a unique one, since
        # the databases are dropped at the end.
        prefix = "caas" if test_server.handle.kind == "embedded" else new_prefix()
        asyncio.run(serve(test_server.handle.uri, prefix, uvicorn))
    except KeyboardInterrupt:
        pass
    finally:
        test_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
