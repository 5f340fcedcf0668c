"""The security area (seed: security/): IP allow and block lists, security policies."""

from caas_data.documents.security import BlockedIp, IpWhitelistEntry, PolicyKind, SecurityPolicy
from caas_data.repositories.security import (
    BlockedIpRepository,
    IpAccessControl,
    IpWhitelistRepository,
    SecurityPolicyRepository,
)

__all__ = [
    "BlockedIp",
    "BlockedIpRepository",
    "IpAccessControl",
    "IpWhitelistEntry",
    "IpWhitelistRepository",
    "PolicyKind",
    "SecurityPolicy",
    "SecurityPolicyRepository",
]
