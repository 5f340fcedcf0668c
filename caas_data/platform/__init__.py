"""The platform area (seed: platform/): SaaS clients, applications, API keys, admins."""

from caas_data.documents.platform import (
    AdminRole,
    AdminStatus,
    ApiKey,
    Application,
    ApplicationStatus,
    ClientStatus,
    PlatformAdmin,
    SaasClient,
)
from caas_data.repositories.platform.api_keys import ApiKeyPrincipal, ApiKeyRepository, IssuedApiKey
from caas_data.repositories.platform.directory import (
    ApplicationRepository,
    PlatformAdminRepository,
    SaasClientRepository,
)

__all__ = [
    "AdminRole",
    "AdminStatus",
    "ApiKey",
    "ApiKeyPrincipal",
    "ApiKeyRepository",
    "Application",
    "ApplicationRepository",
    "ApplicationStatus",
    "ClientStatus",
    "IssuedApiKey",
    "PlatformAdmin",
    "PlatformAdminRepository",
    "SaasClient",
    "SaasClientRepository",
]
