"""Repositories of the platform documents (`caas_data.documents.platform`)."""

from caas_data.repositories.platform.api_keys import (
    API_KEY_PREFIX,
    ApiKeyPrincipal,
    ApiKeyRepository,
    IssuedApiKey,
    hash_api_key,
)
from caas_data.repositories.platform.directory import (
    MIN_ADMIN_PASSWORD_LENGTH,
    ApplicationRepository,
    PlatformAdminRepository,
    SaasClientRepository,
)

__all__ = [
    "API_KEY_PREFIX",
    "MIN_ADMIN_PASSWORD_LENGTH",
    "ApiKeyPrincipal",
    "ApiKeyRepository",
    "ApplicationRepository",
    "IssuedApiKey",
    "PlatformAdminRepository",
    "SaasClientRepository",
    "hash_api_key",
]
