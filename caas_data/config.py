"""Settings, resolved in one order: explicit argument, then `CAAS_*` environment, then default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EncryptionOptions", "Settings"]


class Settings(BaseSettings):
    """What the layer needs to know to talk to its cluster."""

    model_config = SettingsConfigDict(env_prefix="CAAS_", extra="ignore", frozen=True)

    mongodb_uri: str | None = Field(
        default=None, description="Connection string; connect() refuses to guess one."
    )
    database_prefix: str = Field(
        default="caas",
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="Databases are named {prefix}_platform, {prefix}_shared, {prefix}_{tenant}...",
    )
    operation_timeout_ms: int = Field(
        default=10_000,
        gt=0,
        description=(
            "Client-side timeout of every operation (PyMongo timeoutMS). Kept on purpose: it "
            "costs some client CPU per call (see README, Benchmarks) but is the only option "
            "that bounds the whole operation."
        ),
    )
    write_concern: str = Field(
        default="majority",
        pattern=r"^(majority|[0-9]{1,2})$",
        description=(
            "The `w` of every write (`majority`: acknowledged writes survive the loss of the "
            "primary; on MongoDB it also implies the journal). Override per call with "
            "`caas_data.write_concern()` or `unit_of_work(write_concern=...)`."
        ),
    )
    tenant_cache_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a resolved tenant placement is trusted before re-reading it.",
    )
    create_platform_indexes: bool = Field(
        default=True, description="Create the platform collections' indexes at connect()."
    )


@dataclass(frozen=True, slots=True)
class EncryptionOptions:
    """Field encryption of one layer: where data keys are kept and what wraps them.

    Each tenant gets one data key in the key vault (`{prefix}_platform.{key_vault}`), with the
    tenant id as its key alt name, wrapped by the KMS master key. Tests use a local 96-byte
    master key (`EncryptionOptions.local(key)`); production names a KMS provider, e.g.
    `EncryptionOptions(kms_providers={"aws": {...}}, kms_provider="aws",
    master_key={"region": ..., "key": ...})`.

    Attributes:
        kms_providers: PyMongo's `kms_providers` mapping.
        kms_provider: which of them wraps new data keys.
        master_key: the provider's master key document (None for "local").
        personal_fields: also encrypt the shipped documents' `caas_personal_fields` (user
            email, device push tokens); off by default, since turning it on for existing
            plaintext data needs a migration (reads pass old plaintext through).
        key_vault: the key vault collection's name in the platform database.
        kms_tls_options: PyMongo's `kms_tls_options`.
    """

    kms_providers: Mapping[str, Any]
    kms_provider: str = "local"
    master_key: Mapping[str, Any] | None = None
    personal_fields: bool = False
    key_vault: str = "encryption_keys"
    kms_tls_options: Mapping[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kms_provider not in self.kms_providers:
            raise ValueError(f"kms_provider {self.kms_provider!r} is not in kms_providers")

    def __repr__(self) -> str:
        # Never print key material (a local master key is the whole secret).
        return (
            f"EncryptionOptions(kms_provider={self.kms_provider!r}, "
            f"personal_fields={self.personal_fields}, key_vault={self.key_vault!r})"
        )

    @classmethod
    def local(cls, key: bytes, *, personal_fields: bool = False) -> EncryptionOptions:
        """A local master key (96 bytes): for tests and development, not for production."""
        if not isinstance(key, bytes) or len(key) != 96:
            raise ValueError("a local master key is 96 bytes")
        return cls({"local": {"key": key}}, personal_fields=personal_fields)
