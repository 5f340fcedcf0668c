"""The per-tenant area (seed: saas/): users, messaging, media, groups, encryption, settings."""

from caas_data.documents.counters import Counter, OwnedCounter
from caas_data.documents.saas.encryption import OneTimePrekey, PrekeyBundle, SignedPrekey, UserKey
from caas_data.documents.saas.groups import (
    Group,
    GroupMember,
    GroupRole,
    GroupVisibility,
    MembershipStatus,
)
from caas_data.documents.saas.media import (
    MediaFile,
    MediaMetadata,
    Post,
    PostKind,
    PostVisibility,
    ScanStatus,
)
from caas_data.documents.saas.messaging import (
    Attachment,
    Conversation,
    ConversationKind,
    Message,
    MessageEdit,
    MessagePreview,
    Reaction,
    ReadReceipt,
)
from caas_data.documents.saas.settings import (
    FeatureSettings,
    LimitSettings,
    RetentionSettings,
    TenantSettings,
)
from caas_data.documents.saas.users import (
    DevicePlatform,
    Presence,
    PushProvider,
    RelationshipKind,
    User,
    UserDevice,
    UserRelationship,
    UserSession,
    UserStatus,
)
from caas_data.repositories.counters import CounterRepository, OwnedCounterRepository
from caas_data.repositories.saas.conversations import ConversationRepository
from caas_data.repositories.saas.encryption import PrekeyBundleRepository, UserKeyRepository
from caas_data.repositories.saas.groups import GroupMemberRepository, GroupRepository
from caas_data.repositories.saas.media import (
    MediaFileRepository,
    MediaMetadataRepository,
    PostRepository,
)
from caas_data.repositories.saas.messages import MessageRepository
from caas_data.repositories.saas.reactions import ReactionRepository
from caas_data.repositories.saas.receipts import ReadReceiptRepository
from caas_data.repositories.saas.search import MessageSearchRepository
from caas_data.repositories.saas.settings import TenantSettingsRepository
from caas_data.repositories.saas.users import (
    UserDeviceRepository,
    UserRelationshipRepository,
    UserRepository,
    UserSessionRepository,
)

__all__ = [
    "Attachment",
    "Conversation",
    "ConversationKind",
    "ConversationRepository",
    "Counter",
    "CounterRepository",
    "DevicePlatform",
    "FeatureSettings",
    "Group",
    "GroupMember",
    "GroupMemberRepository",
    "GroupRepository",
    "GroupRole",
    "GroupVisibility",
    "LimitSettings",
    "MediaFile",
    "MediaFileRepository",
    "MediaMetadata",
    "MediaMetadataRepository",
    "MembershipStatus",
    "Message",
    "MessageEdit",
    "MessagePreview",
    "MessageRepository",
    "MessageSearchRepository",
    "OneTimePrekey",
    "OwnedCounter",
    "OwnedCounterRepository",
    "Post",
    "PostKind",
    "PostRepository",
    "PostVisibility",
    "PrekeyBundle",
    "PrekeyBundleRepository",
    "Presence",
    "PushProvider",
    "Reaction",
    "ReactionRepository",
    "ReadReceipt",
    "ReadReceiptRepository",
    "RelationshipKind",
    "RetentionSettings",
    "ScanStatus",
    "SignedPrekey",
    "TenantSettings",
    "TenantSettingsRepository",
    "User",
    "UserDevice",
    "UserDeviceRepository",
    "UserKey",
    "UserKeyRepository",
    "UserRelationship",
    "UserRelationshipRepository",
    "UserRepository",
    "UserSession",
    "UserSessionRepository",
    "UserStatus",
]
