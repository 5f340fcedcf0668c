"""Repositories: typed, tenant-scoped data access, one module per schema area."""

from caas_data.repositories.analytics.audit import AuditLogRepository
from caas_data.repositories.analytics.audit_chain import ChainReport
from caas_data.repositories.analytics.events import EventRepository, MetricRepository
from caas_data.repositories.base import (
    INT64_MAX,
    Page,
    Repository,
    SortSpec,
    check_duration,
    check_int,
)
from caas_data.repositories.billing.invoices import (
    InvoiceRepository,
)
from caas_data.repositories.billing.subscriptions import (
    PaymentMethodRepository,
    PlanRepository,
    SubscriptionRepository,
    UsageRecordRepository,
)
from caas_data.repositories.counters import (
    CounterRepository,
    OwnedCounterRepository,
)
from caas_data.repositories.platform.api_keys import (
    ApiKeyPrincipal,
    ApiKeyRepository,
    IssuedApiKey,
)
from caas_data.repositories.platform.directory import (
    ApplicationRepository,
    PlatformAdminRepository,
    SaasClientRepository,
)
from caas_data.repositories.saas import (
    UserDeviceRepository,
    UserRelationshipRepository,
    UserRepository,
    UserSessionRepository,
)
from caas_data.repositories.saas.encryption import (
    PrekeyBundleRepository,
    UserKeyRepository,
)
from caas_data.repositories.saas.groups import (
    GroupMemberRepository,
    GroupRepository,
)
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
from caas_data.repositories.saas.search import (
    MessageSearchRepository,
)
from caas_data.repositories.saas.settings import (
    TenantSettingsRepository,
)
from caas_data.repositories.security import (
    BlockedIpRepository,
    IpAccessControl,
    IpWhitelistRepository,
    SecurityPolicyRepository,
)

__all__ = [
    "INT64_MAX",
    "ApiKeyPrincipal",
    "ApiKeyRepository",
    "ApplicationRepository",
    "AuditLogRepository",
    "BlockedIpRepository",
    "ChainReport",
    "ConversationRepository",
    "CounterRepository",
    "EventRepository",
    "GroupMemberRepository",
    "GroupRepository",
    "InvoiceRepository",
    "IpAccessControl",
    "IpWhitelistRepository",
    "IssuedApiKey",
    "MediaFileRepository",
    "MediaMetadataRepository",
    "MessageRepository",
    "MessageSearchRepository",
    "MetricRepository",
    "OwnedCounterRepository",
    "Page",
    "PaymentMethodRepository",
    "PlanRepository",
    "PlatformAdminRepository",
    "PostRepository",
    "PrekeyBundleRepository",
    "ReactionRepository",
    "ReadReceiptRepository",
    "Repository",
    "SaasClientRepository",
    "SecurityPolicyRepository",
    "SortSpec",
    "SubscriptionRepository",
    "TenantSettingsRepository",
    "UsageRecordRepository",
    "UserDeviceRepository",
    "UserKeyRepository",
    "UserRelationshipRepository",
    "UserRepository",
    "UserSessionRepository",
    "check_duration",
    "check_int",
]
