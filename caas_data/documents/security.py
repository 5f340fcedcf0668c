"""Security collections (in `{prefix}_platform`): IP allow and block lists, security policies.

IP entries store a normalised network (`cidr`) plus its first and last address as fixed-width
hex, so "which entries contain this address" is an indexed range query for IPv4 and IPv6
alike, whatever the number of entries.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymongo import ASCENDING, IndexModel

from caas_data.documents.base import Area, BaseDocument, TenantOwnedDocument

__all__ = [
    "DOCUMENTS",
    "BlockedIp",
    "IpPolicy",
    "IpRule",
    "IpWhitelistEntry",
    "PasswordPolicy",
    "PolicyKind",
    "PolicySettings",
    "RateLimitPolicy",
    "SecurityPolicy",
    "SessionPolicy",
    "address_key",
    "parse_address",
    "parse_network",
]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(value: str) -> IpAddress:
    """An IP address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is read as the IPv4 it carries."""
    try:
        address = ipaddress.ip_address(value.strip())
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from exc
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(value: str) -> IpNetwork:
    """A network from an address (`10.0.0.1`, one host) or a CIDR range (`10.0.0.0/8`).

    Host bits set in a range (`10.0.0.5/8`) are refused rather than silently masked: the
    caller probably meant something else than what would be stored.
    """
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text:
        raise ValueError("an IP address or CIDR range is required")
    if "/" not in text:
        address = parse_address(text)
        return ipaddress.ip_network(address)
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR range") from exc
        raise ValueError(f"{value!r} has host bits set: did you mean {loose}?") from exc
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        mapped = network.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{mapped}/{max(network.prefixlen - 96, 0)}")
    return network


def address_key(address: IpAddress) -> str:
    """Fixed-width hex of an address: string order is numeric order within one IP version."""
    return f"{int(address):032x}"


class IpRule(TenantOwnedDocument):
    """Common shape of allow-list and block-list entries: one network, stored as a range."""

    caas_area: ClassVar[Area] = Area.PLATFORM

    cidr: str = Field(description="Normalised network, e.g. 10.0.0.0/8 or 2001:db8::/32.")
    ip_version: Literal[4, 6] = 4
    range_start: str = ""
    range_end: str = ""
    description: str | None = Field(default=None, max_length=500)
    created_by: str | None = Field(default=None, max_length=200)

    @field_validator("cidr", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> str:
        return str(parse_network(value))

    @model_validator(mode="after")
    def _range(self) -> IpRule:
        # Derived from `cidr` on every validation, so a stored range cannot drift from it.
        network = parse_network(self.cidr)
        self.ip_version = network.version
        self.range_start = address_key(network.network_address)
        self.range_end = address_key(network.broadcast_address)
        return self

    def network(self) -> IpNetwork:
        """The stored network."""
        return parse_network(self.cidr)


def _ip_rule_indexes(prefix: str) -> list[IndexModel]:
    return [
        IndexModel(
            [("tenant_id", ASCENDING), ("cidr", ASCENDING)],
            unique=True,
            name=f"{prefix}_tenant_cidr_unique",
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("ip_version", ASCENDING), ("range_start", ASCENDING)],
            name=f"{prefix}_tenant_range",
        ),
    ]


class IpWhitelistEntry(IpRule):
    """An allowed address or range: once a tenant has any, only matching addresses get in."""

    class Settings:
        name = "ip_whitelist"
        indexes = _ip_rule_indexes("whitelist")


class BlockedIp(IpRule):
    """A blocked address or range; blocks win over the allow list. Expires by TTL if timed."""

    reason: str | None = Field(default=None, max_length=500)
    expires_at: datetime | None = None

    class Settings:
        name = "blocked_ips"
        indexes = [
            *_ip_rule_indexes("blocked"),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl_expires_at"),
        ]

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        return value


class PolicyKind(StrEnum):
    """The kinds of security policy a tenant can set."""

    PASSWORD = "password"
    SESSION = "session"
    IP = "ip"
    RATE_LIMIT = "rate_limit"


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordPolicy(_Policy):
    """How end-user passwords must look and age."""

    kind: Literal[PolicyKind.PASSWORD] = PolicyKind.PASSWORD
    min_length: int = Field(default=12, ge=8, le=128)
    require_uppercase: bool = True
    require_digit: bool = True
    require_symbol: bool = False
    max_age_days: int | None = Field(default=None, ge=1, le=3650)
    history: int = Field(default=5, ge=0, le=50, description="Recent passwords not reusable.")


class SessionPolicy(_Policy):
    """How long end-user sessions last."""

    kind: Literal[PolicyKind.SESSION] = PolicyKind.SESSION
    idle_timeout_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30)
    absolute_timeout_hours: int = Field(default=24 * 30, ge=1, le=24 * 365)
    max_sessions_per_user: int = Field(default=10, ge=1, le=1000)
    require_mfa: bool = False


class IpPolicy(_Policy):
    """How the IP lists are applied."""

    kind: Literal[PolicyKind.IP] = PolicyKind.IP
    enforce_whitelist: bool = Field(
        default=True, description="Once the allow list has entries, refuse other addresses."
    )
    auto_block_after_failures: int | None = Field(default=20, ge=1)
    auto_block_minutes: int = Field(default=60, ge=1, le=60 * 24 * 365)


class RateLimitPolicy(_Policy):
    """Request budgets per API key and per end user."""

    kind: Literal[PolicyKind.RATE_LIMIT] = PolicyKind.RATE_LIMIT
    requests_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    burst: int = Field(default=100, ge=1, le=1_000_000)
    messages_per_minute_per_user: int = Field(default=60, ge=1, le=100_000)


PolicySettings = Annotated[
    PasswordPolicy | SessionPolicy | IpPolicy | RateLimitPolicy, Field(discriminator="kind")
]


class SecurityPolicy(TenantOwnedDocument):
    """One typed policy of a tenant (or, under the platform's id, the platform default)."""

    caas_area: ClassVar[Area] = Area.PLATFORM

    kind: PolicyKind
    settings: PolicySettings
    updated_by: str | None = Field(default=None, max_length=200)

    class Settings:
        name = "security_policies"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("kind", ASCENDING)],
                unique=True,
                name="tenant_kind_unique",
            )
        ]

    @model_validator(mode="after")
    def _kind_matches(self) -> SecurityPolicy:
        if self.settings.kind != self.kind:
            raise ValueError(f"settings are a {self.settings.kind} policy, not {self.kind}")
        return self


DOCUMENTS: tuple[type[BaseDocument], ...] = (IpWhitelistEntry, BlockedIp, SecurityPolicy)
