"""Factories of valid documents for tests, one per domain, created through the repositories.

```python
async def test_unread(caas_layer, caas_tenant, caas_factories):
    async with tenant_scope(await caas_tenant(tier=Tier.PRO)):
        chat = await caas_factories.direct_conversation()
        await caas_factories.message(chat, text="hi")
```

Each factory writes through the domain's repository, so what it returns is stored and valid by
construction (and follows the repository's rules: counts, seqs, hashes...). Defaults are
sensible and unique per `Factories` (`external_id="user-3"`...); every one can be overridden
by keyword. Factories run inside the caller's `tenant_scope()` and never enter one
themselves; related documents that are not given (the sender of a message, the owner of a
group...) are created too.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import itertools
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from beanie import PydanticObjectId

from caas_data.documents.analytics import Event
from caas_data.documents.billing import (
    Invoice,
    InvoiceLine,
    PaymentMethod,
    Plan,
    Subscription,
    UsageMetric,
    UsageRecord,
)
from caas_data.documents.platform import Application
from caas_data.documents.saas.encryption import KEY_BYTES, SIGNATURE_BYTES, PrekeyBundle, UserKey
from caas_data.documents.saas.groups import Group, GroupMember, GroupVisibility
from caas_data.documents.saas.media import MediaFile, MediaMetadata, Post
from caas_data.documents.saas.messaging import Conversation, Message, Reaction, ReadReceipt
from caas_data.documents.saas.settings import SettingsSection, TenantSettings
from caas_data.documents.saas.users import DevicePlatform, User, UserDevice
from caas_data.errors import NotFoundError, TenantContextMissing
from caas_data.layer import DataLayer
from caas_data.repositories.analytics.events import EventRepository
from caas_data.repositories.billing.invoices import InvoiceRepository
from caas_data.repositories.billing.subscriptions import (
    PaymentMethodRepository,
    PlanRepository,
    SubscriptionRepository,
    UsageRecordRepository,
)
from caas_data.repositories.platform.api_keys import ApiKeyRepository, IssuedApiKey
from caas_data.repositories.platform.directory import ApplicationRepository
from caas_data.repositories.saas.encryption import PrekeyBundleRepository, UserKeyRepository
from caas_data.repositories.saas.groups import GroupMemberRepository, GroupRepository
from caas_data.repositories.saas.media import (
    MediaFileRepository,
    MediaMetadataRepository,
    PostRepository,
)
from caas_data.repositories.saas.messaging import (
    ConversationRepository,
    MessageRepository,
    ReactionRepository,
    ReadReceiptRepository,
)
from caas_data.repositories.saas.settings import TenantSettingsRepository
from caas_data.repositories.saas.users import UserDeviceRepository, UserRepository
from caas_data.tenancy.context import current_tenant_id

__all__ = ["Factories", "public_key", "signature"]


def public_key() -> bytes:
    """32 random bytes: a well-formed Curve25519/Ed25519 public key (never all zero)."""
    return secrets.token_bytes(KEY_BYTES - 1) + b"\x01"


def signature() -> bytes:
    """64 random bytes: a well-formed signature (the layer does not verify signatures)."""
    return secrets.token_bytes(SIGNATURE_BYTES)


def _id_of(document: Any) -> PydanticObjectId:
    assert document.id is not None, "document was never stored"
    return PydanticObjectId(document.id)


def _user_id(user: User | PydanticObjectId) -> PydanticObjectId:
    return _id_of(user) if isinstance(user, User) else user


class Factories:
    """Document factories bound to a layer; use them inside a `tenant_scope()`.

    The `caas_factories` fixture of the pytest plugin is one of these, on `caas_layer`.
    """

    def __init__(self, layer: DataLayer) -> None:
        self.layer = layer
        self._numbers = itertools.count(1)
        # Platform-wide names (plan codes) must not collide between test sessions either.
        self._token = uuid.uuid4().hex[:8]

    def _next(self, stem: str) -> str:
        return f"{stem}-{next(self._numbers)}"

    @staticmethod
    def _tenant() -> str:
        tenant = current_tenant_id()
        if tenant is None:
            raise TenantContextMissing("factories run inside the caller's tenant_scope()")
        return tenant

    # -- users ------------------------------------------------------------------------------

    async def user(self, **overrides: Any) -> User:
        """A user (`external_id="user-N"`, `display_name="User N"`)."""
        name = self._next("user")
        fields = {"external_id": name, "display_name": name.replace("-", " ").title()}
        return await self.layer.repo(UserRepository).create({**fields, **overrides})

    async def users(self, count: int, **overrides: Any) -> list[User]:
        """`count` users (same overrides for each; the defaults stay unique)."""
        return [await self.user(**overrides) for _ in range(count)]

    async def device(self, user: User | None = None, **overrides: Any) -> UserDevice:
        """A registered web device of `user` (a new user if None)."""
        owner = user or await self.user()
        fields: dict[str, Any] = {"device_id": self._next("device"), "platform": DevicePlatform.WEB}
        fields.update(overrides)
        device_id = fields.pop("device_id")
        return await self.layer.repo(UserDeviceRepository).register(
            _id_of(owner), device_id, **fields
        )

    # -- messaging --------------------------------------------------------------------------

    async def direct_conversation(
        self, user_a: User | None = None, user_b: User | None = None
    ) -> Conversation:
        """The direct conversation of two users (new users where None)."""
        a = user_a or await self.user()
        b = user_b or await self.user()
        return await self.layer.repo(ConversationRepository).open_direct(_id_of(a), _id_of(b))

    async def group_conversation(
        self,
        members: Sequence[User] | None = None,
        *,
        title: str | None = None,
        group: Group | None = None,
    ) -> Conversation:
        """The conversation of a group; `members` (default: 3 new users) are its participants.

        Without `group`, a group owned by the first member is created with all of them, and
        linked to the conversation.
        """
        people = list(members) if members is not None else await self.users(3)
        if not people:
            raise ValueError("a group conversation needs at least one member")
        name = title or self._next("Group")
        if group is None:
            group = await self.group(owner=people[0], members=people[1:], name=name)
        conversation = await self.layer.repo(ConversationRepository).open_group(
            _id_of(group),
            title=name,
            participant_ids=[_id_of(p) for p in people],
            created_by=_id_of(people[0]),
        )
        if group.conversation_id is None:
            await self.layer.repo(GroupRepository).update(group, conversation_id=conversation.id)
        return conversation

    async def message(
        self,
        conversation: Conversation | None = None,
        *,
        sender: User | PydanticObjectId | None = None,
        text: str | None = None,
        **overrides: Any,
    ) -> Message:
        """A message sent to `conversation` (a new direct one if None).

        `sender` (a user or a user id) defaults to the first participant; `text` to
        "Message N". Other keywords go to `MessageRepository.send` (`attachments`,
        `reply_to_id`, `client_message_id`...).
        """
        chat = conversation or await self.direct_conversation()
        sender_id = chat.participant_ids[0] if sender is None else _user_id(sender)
        if text is None and "attachments" not in overrides:
            text = self._next("Message").replace("-", " ")
        return await self.layer.repo(MessageRepository).send(
            _id_of(chat), sender_id, text=text, **overrides
        )

    async def reaction(
        self,
        message: Message | None = None,
        *,
        user: User | PydanticObjectId | None = None,
        emoji: str = "👍",
    ) -> Reaction:
        """`user`'s reaction on `message` (defaults: a new message, its sender)."""
        target = message or await self.message()
        user_id = target.sender_id if user is None else _user_id(user)
        reactions = self.layer.repo(ReactionRepository)
        key = {"message_id": _id_of(target), "user_id": user_id, "emoji": emoji}
        found = await reactions.find_one(key)
        if found is None:
            await reactions.toggle(_id_of(target), user_id, emoji)
            found = await reactions.find_one(key)
        if found is None:  # pragma: no cover - a concurrent toggle removed it
            raise NotFoundError("the reaction was removed meanwhile", document_type=Reaction)
        return found

    async def read_receipt(
        self,
        conversation: Conversation | None = None,
        *,
        user: User | PydanticObjectId | None = None,
        seq: int | None = None,
    ) -> ReadReceipt:
        """`user` (default: the last participant) has read `conversation` up to `seq`.

        A new conversation gets one message first; `seq` defaults to the newest message.
        """
        chat = conversation or await self.direct_conversation()
        if conversation is None:
            await self.message(chat)
        user_id = chat.participant_ids[-1] if user is None else _user_id(user)
        return await self.layer.repo(ReadReceiptRepository).mark_read(
            _id_of(chat), user_id, 1_000_000_000 if seq is None else seq
        )

    # -- groups -----------------------------------------------------------------------------

    async def group(
        self,
        *,
        owner: User | None = None,
        members: Sequence[User] = (),
        **overrides: Any,
    ) -> Group:
        """A private group (`name="Group N"`) owned by `owner` (a new user if None).

        Other keywords go to `GroupRepository.create_with_members` (`visibility`, `description`...).
        """
        head = owner or await self.user()
        fields: dict[str, Any] = {"name": self._next("Group").replace("-", " ")}
        fields.update(overrides)
        return await self.layer.repo(GroupRepository).create_with_members(
            owner_id=_id_of(head), member_ids=[_id_of(m) for m in members], **fields
        )

    async def group_member(
        self, group: Group | None = None, *, user: User | None = None
    ) -> GroupMember:
        """`user` (a new one if None) added to `group` (a new one if None) by its owner."""
        target = group or await self.group()
        member = user or await self.user()
        added_by = None if target.visibility is GroupVisibility.PUBLIC else target.created_by
        await self.layer.repo(GroupRepository).join(_id_of(target), _id_of(member), actor=added_by)
        membership = await self.layer.repo(GroupMemberRepository).get_membership_or_none(
            _id_of(target), _id_of(member)
        )
        assert membership is not None, "join() stores the membership"
        return membership

    # -- media ------------------------------------------------------------------------------

    async def media_file(self, *, uploader: User | None = None, **overrides: Any) -> MediaFile:
        """A registered JPEG (scan pending) uploaded by `uploader` (a new user if None)."""
        owner = uploader or await self.user()
        name = self._next("photo")
        fields: dict[str, Any] = {
            "name": f"{name}.jpg",
            "mime_type": "image/jpeg",
            "size_bytes": 2048,
            "sha256": hashlib.sha256(name.encode()).hexdigest(),
            "storage_key": f"uploads/{self._token}/{name}.jpg",
        }
        fields.update(overrides)
        return await self.layer.repo(MediaFileRepository).register(
            uploader_id=_id_of(owner), **fields
        )

    async def media_metadata(self, file: MediaFile | None = None, **fields: Any) -> MediaMetadata:
        """What processing learned about `file` (a new one if None): 640x480 by default."""
        target = file or await self.media_file()
        values: dict[str, Any] = {"width": 640, "height": 480, **fields}
        return await self.layer.repo(MediaMetadataRepository).upsert_by_file(
            _id_of(target), **values
        )

    async def post(self, *, author: User | None = None, **overrides: Any) -> Post:
        """A public text post of `author` (a new user if None).

        Other keywords go to `PostRepository.publish` (`file_ids`, `kind`, `visibility`...).
        """
        writer = author or await self.user()
        fields: dict[str, Any] = {"caption": self._next("Post").replace("-", " ")}
        fields.update(overrides)
        return await self.layer.repo(PostRepository).publish(author_id=_id_of(writer), **fields)

    # -- encryption (public keys only) --------------------------------------------------------

    async def user_key(
        self,
        user: User | None = None,
        *,
        device_id: str | None = None,
        identity_key: Any = None,
        registration_id: int | None = None,
    ) -> UserKey:
        """A device's identity public key (random unless given)."""
        owner = user or await self.user()
        return await self.layer.repo(UserKeyRepository).publish(
            _id_of(owner),
            device_id or self._next("device"),
            identity_key if identity_key is not None else public_key(),
            registration_id=registration_id,
        )

    async def prekey_bundle(
        self,
        user: User | None = None,
        *,
        device_id: str | None = None,
        one_time_prekeys: int = 5,
    ) -> PrekeyBundle:
        """A device's signed prekey and `one_time_prekeys` one-time prekeys (random keys)."""
        owner = user or await self.user()
        device = device_id or self._next("device")
        bundles = self.layer.repo(PrekeyBundleRepository)
        bundle = await bundles.set_signed_prekey(
            _id_of(owner), device, key_id=1, public_key=public_key(), signature=signature()
        )
        if one_time_prekeys:
            batch = [{"key_id": i, "public_key": public_key()} for i in range(one_time_prekeys)]
            await bundles.publish_one_time_prekeys(_id_of(owner), device, batch)
            return await bundles.get(_id_of(bundle))
        return bundle

    # -- settings -----------------------------------------------------------------------------

    async def tenant_settings(
        self,
        *,
        retention: Mapping[str, Any] | None = None,
        limits: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
    ) -> TenantSettings:
        """The tenant's settings, stored, with the given sections' changes.

        With no change given, one default is written (`features.reactions`), so the document
        exists with every default.
        """
        changes = {
            SettingsSection.RETENTION: retention,
            SettingsSection.LIMITS: limits,
            SettingsSection.FEATURES: features,
        }
        given = {section: dict(c) for section, c in changes.items() if c}
        if not given:
            given = {SettingsSection.FEATURES: {"reactions": True}}
        settings = self.layer.repo(TenantSettingsRepository)
        stored = await settings.get_settings()
        for section, values in given.items():
            stored = await settings.update_section(section, values)
        return stored

    # -- platform -------------------------------------------------------------------------------

    async def application(self, **overrides: Any) -> Application:
        """An active application of the tenant (`name="app-N"`)."""
        fields = {"name": self._next("app"), **overrides}
        return await self.layer.repo(ApplicationRepository).create(fields)

    async def api_key(
        self,
        *,
        name: str | None = None,
        scopes: Iterable[str] = ("chat",),
        application: Application | None = None,
        **overrides: Any,
    ) -> IssuedApiKey:
        """A new API key of the tenant: `.key` is the stored document, `.secret` the raw key.

        Other keywords go to `ApiKeyRepository.issue` (`expires_in`, `actor`).
        """
        return await self.layer.repo(ApiKeyRepository).issue(
            name or self._next("key"),
            scopes=scopes,
            application_id=None if application is None else application.id,
            **overrides,
        )

    # -- billing ----------------------------------------------------------------------------------

    async def plan(self, **overrides: Any) -> Plan:
        """An active monthly plan (platform-wide), of the scope tenant's tier by default.

        Its code is unique across sessions (`plan-<token>-N`), since plans are not per tenant.
        """
        fields: dict[str, Any] = {
            "code": self._next(f"plan-{self._token}"),
            "name": self._next("Plan").replace("-", " "),
            "price_cents": 4900,
        }
        fields.update(overrides)
        if "tier" not in fields:
            placement = await self.layer.tenants.placement(self._tenant())
            fields["tier"] = placement.tier
        # Plans are platform rows, read-only from the tenant's scope: the factory writes this
        # one as the platform does, in a task that runs outside any scope.
        create = self.layer.repo(PlanRepository).create(fields)
        return await asyncio.create_task(create, context=contextvars.Context())

    async def subscription(self, plan: Plan | None = None) -> Subscription:
        """The tenant's active subscription to `plan`.

        The default plan is a new one of the tenant's own tier, so no tier change is
        recorded. A tenant has one active subscription: a second call raises `DuplicateError`.
        """
        chosen = plan or await self.plan()
        return await self.layer.repo(SubscriptionRepository).subscribe(chosen.code)

    async def invoice_draft(
        self, lines: Iterable[InvoiceLine | Mapping[str, Any]] | None = None, **overrides: Any
    ) -> Invoice:
        """A draft invoice (no number yet) of one line unless `lines` are given.

        Other keywords go to `InvoiceRepository.draft` (`currency`, `subscription_id`,
        `period_start`, `period_end`).
        """
        chosen = (
            [{"description": "Pro plan", "unit_amount_cents": 4900}] if lines is None else lines
        )
        return await self.layer.repo(InvoiceRepository).draft(chosen, **overrides)

    async def payment_method(self, **overrides: Any) -> PaymentMethod:
        """A card on file as a processor token (never a card number)."""
        fields: dict[str, Any] = {
            "processor_token": f"tok_{secrets.token_hex(8)}",
            "brand": "visa",
            "last4": "4242",
            "exp_month": 12,
            "exp_year": 2099,
        }
        fields.update(overrides)
        return await self.layer.repo(PaymentMethodRepository).attach(**fields)

    async def usage_record(
        self,
        metric: UsageMetric = UsageMetric.MESSAGES_SENT,
        quantity: int = 1,
        **overrides: Any,
    ) -> UsageRecord:
        """One usage report with a fresh idempotency key."""
        fields: dict[str, Any] = {"idempotency_key": self._next(f"usage-{self._token}")}
        fields.update(overrides)
        return await self.layer.repo(UsageRecordRepository).record(metric, quantity, **fields)

    # -- analytics --------------------------------------------------------------------------------

    async def event(self, name: str = "message.sent", **overrides: Any) -> Event:
        """An appended activity event (`value=1`, now).

        Keywords go to `EventRepository.record`: `value`, `user_id`, `properties`, `at`.
        """
        return await self.layer.repo(EventRepository).record(name, **overrides)
