"""caas_data.testing.factories: every factory stores a valid document of the scope's tenant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from caas_data import (
    Area,
    BaseDocument,
    DataLayer,
    DuplicateError,
    TenantContextMissing,
    Tier,
    tenant_scope,
)
from caas_data.analytics import Event, EventRepository
from caas_data.billing import (
    Invoice,
    InvoiceRepository,
    InvoiceStatus,
    PaymentMethod,
    PaymentMethodRepository,
    Plan,
    PlanRepository,
    Subscription,
    SubscriptionRepository,
    UsageRecord,
    UsageRecordRepository,
)
from caas_data.documents.registry import spec_of
from caas_data.platform import ApiKey, ApiKeyRepository, Application, ApplicationRepository
from caas_data.repositories.base import Repository
from caas_data.saas import (
    Conversation,
    ConversationKind,
    ConversationRepository,
    Group,
    GroupMember,
    GroupMemberRepository,
    GroupRepository,
    GroupVisibility,
    MediaFile,
    MediaFileRepository,
    MediaMetadata,
    MediaMetadataRepository,
    Message,
    MessageRepository,
    Post,
    PostRepository,
    PrekeyBundle,
    PrekeyBundleRepository,
    Reaction,
    ReactionRepository,
    ReadReceipt,
    ReadReceiptRepository,
    TenantSettings,
    TenantSettingsRepository,
    User,
    UserDevice,
    UserDeviceRepository,
    UserKey,
    UserKeyRepository,
    UserRepository,
)
from caas_data.testing import Factories

from .conftest import raw_collection

TenantFactory = Callable[..., Awaitable[str]]

REPOSITORIES: dict[type[BaseDocument], type[Repository[Any]]] = {
    User: UserRepository,
    UserDevice: UserDeviceRepository,
    Conversation: ConversationRepository,
    Message: MessageRepository,
    Reaction: ReactionRepository,
    ReadReceipt: ReadReceiptRepository,
    Group: GroupRepository,
    GroupMember: GroupMemberRepository,
    MediaFile: MediaFileRepository,
    MediaMetadata: MediaMetadataRepository,
    Post: PostRepository,
    UserKey: UserKeyRepository,
    PrekeyBundle: PrekeyBundleRepository,
    TenantSettings: TenantSettingsRepository,
    Application: ApplicationRepository,
    ApiKey: ApiKeyRepository,
    Plan: PlanRepository,
    Subscription: SubscriptionRepository,
    Invoice: InvoiceRepository,
    PaymentMethod: PaymentMethodRepository,
    UsageRecord: UsageRecordRepository,
    Event: EventRepository,
}


async def make_one_of_each(f: Factories) -> list[BaseDocument]:
    """Every factory once, with its defaults (related documents made on the way)."""
    user = await f.user()
    direct = await f.direct_conversation()
    message = await f.message(direct)
    group = await f.group(owner=user)
    media = await f.media_file(uploader=user)
    plan = await f.plan()
    made: list[BaseDocument] = [
        user,
        await f.device(user),
        direct,
        await f.group_conversation(),
        message,
        await f.reaction(message),
        await f.read_receipt(direct),
        group,
        await f.group_member(group),
        media,
        await f.media_metadata(media),
        await f.post(author=user),
        await f.user_key(user),
        await f.prekey_bundle(user),
        await f.tenant_settings(),
        await f.application(),
        (await f.api_key()).key,
        plan,
        await f.subscription(plan),
        await f.invoice_draft(),
        await f.payment_method(),
        await f.usage_record(),
        await f.event(),
    ]
    assert {type(d) for d in made} == set(REPOSITORIES)  # one of each kind
    return made


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.PRO, Tier.ENTERPRISE])
async def test_every_factory_stores_a_valid_document_of_the_tenant(
    caas_layer: DataLayer, caas_tenant: TenantFactory, caas_factories: Factories, tier: Tier
) -> None:
    tenant = await caas_tenant(tier=tier)
    async with tenant_scope(tenant):
        made = await make_one_of_each(caas_factories)
        for document in made:
            kind = type(document)
            assert document.id is not None, kind
            stored = await caas_layer.repo(REPOSITORIES[kind]).get(document.id)  # validated
            assert type(stored) is kind and stored.id == document.id
            spec = spec_of(kind)
            if not spec.tenant_keyed:
                assert kind is Plan  # platform-wide
                continue
            assert stored.tenant_id == tenant, kind  # type: ignore[attr-defined]
            if spec.area is Area.TENANT:
                # In the tenant's own placement, as the schema lays it out (no layer logic).
                raw = await raw_collection(caas_layer, tenant, tier, spec.name).find_one(
                    {"_id": document.id}
                )
                assert raw is not None and raw["tenant_id"] == tenant, kind
                kind.model_validate(raw)


async def test_factories_relate_documents_and_take_overrides(
    caas_layer: DataLayer, caas_tenant: TenantFactory, caas_factories: Factories
) -> None:
    f = caas_factories
    async with tenant_scope(await caas_tenant(tier=Tier.PRO)):
        ada, bo = await f.user(display_name="Ada"), await f.user(display_name="Bo")
        assert ada.display_name == "Ada" and ada.external_id != bo.external_id
        chat = await f.direct_conversation(ada, bo)
        assert chat.kind is ConversationKind.DIRECT
        assert set(chat.participant_ids) == {ada.id, bo.id}
        first = await f.message(chat, sender=bo, text="hello")
        second = await f.message(chat, sender=ada.id)
        assert (first.seq, first.sender_id, first.text) == (1, bo.id, "hello")
        assert second.seq == 2 and second.text
        receipt = await f.read_receipt(chat, user=bo)
        assert receipt.last_read_seq == 2  # up to the newest message
        reaction = await f.reaction(first, user=ada, emoji="🎉")
        assert await f.reaction(first, user=ada, emoji="🎉") == reaction  # not toggled off

        team = await f.group_conversation([ada, bo], title="Team")
        group = await caas_layer.repo(GroupRepository).get(team.group_id)
        assert group.conversation_id == team.id and group.member_count == 2
        public = await f.group(visibility=GroupVisibility.PUBLIC, description="open")
        member = await f.group_member(public, user=ada)
        assert member.user_id == ada.id and member.is_active

        bundle = await f.prekey_bundle(ada, device_id="phone", one_time_prekeys=3)
        assert bundle.device_id == "phone" and len(bundle.available) == 3
        assert bundle.signed_prekey is not None
        settings = await f.tenant_settings(limits={"max_group_members": 50})
        assert settings.limits.max_group_members == 50 and settings.features.reactions
        seats = {"description": "Seats", "quantity": 3, "unit_amount_cents": 100}
        invoice = await f.invoice_draft([seats])
        assert invoice.status is InvoiceStatus.DRAFT and invoice.total_cents == 300
        application = await f.application(name="web")
        issued = await f.api_key(application=application, scopes=["messages:read"])
        assert issued.key.application_id == application.id
        assert issued.key.scopes == ["messages:read"] and issued.secret
        subscription = await f.subscription()
        assert subscription.tier is Tier.PRO  # the tenant's own tier: no pending change
        with pytest.raises(DuplicateError):
            await f.subscription()
        event = await f.event("user.login", user_id=str(ada.id), value=2.0)
        assert event.name == "user.login" and event.value == 2.0

    with pytest.raises(TenantContextMissing):  # factories use the caller's scope, never their own
        await f.user()
    with pytest.raises(TenantContextMissing):
        await f.plan()


async def test_the_readme_example(
    caas_layer: DataLayer, caas_tenant: TenantFactory, caas_factories: Factories
) -> None:
    """The plugin example of README.md, as written there."""
    async with tenant_scope(await caas_tenant(tier=Tier.PRO)):
        ada, bo = await caas_factories.users(2)
        chat = await caas_factories.direct_conversation(ada, bo)
        for text in ("hi", "there"):
            await caas_factories.message(chat, sender=ada, text=text)
        inbox = await caas_layer.repo(ConversationRepository).inbox(bo.id)
        assert [item.unread_count for item in inbox] == [2]
