"""Settings, resolved in one order: explicit argument, then `CAAS_*` environment, then default."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


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
    tenant_cache_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a resolved tenant placement is trusted before re-reading it.",
    )
    create_platform_indexes: bool = Field(
        default=True, description="Create the platform collections' indexes at connect()."
    )
