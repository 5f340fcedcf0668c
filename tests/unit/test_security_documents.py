"""IP rules normalise addresses and ranges; policies are typed per kind."""

from __future__ import annotations

import ipaddress

import pydantic
import pytest

from caas_data.documents.security import (
    BlockedIp,
    IpPolicy,
    IpWhitelistEntry,
    PasswordPolicy,
    SecurityPolicy,
    address_key,
    parse_address,
    parse_network,
)


@pytest.mark.parametrize(
    ("given", "stored", "version"),
    [
        ("10.0.0.1", "10.0.0.1/32", 4),
        (" 10.0.0.0/8 ", "10.0.0.0/8", 4),
        ("2001:DB8::1", "2001:db8::1/128", 6),
        ("2001:db8::/32", "2001:db8::/32", 6),
        ("::ffff:192.0.2.7", "192.0.2.7/32", 4),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8", 4),
    ],
)
def test_entries_store_a_normalised_network_and_its_range(
    given: str, stored: str, version: int
) -> None:
    entry = IpWhitelistEntry(tenant_id="acme", cidr=given)
    network = ipaddress.ip_network(stored)
    assert (entry.cidr, entry.ip_version) == (stored, version)
    assert entry.range_start == address_key(network.network_address)
    assert entry.range_end == address_key(network.broadcast_address)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("10.0.0.5/8", "host bits set: did you mean 10.0.0.0/8"),
        ("10.0.0.256", "not an IPv4 or IPv6 address"),
        ("10.0.0.0/33", "not an IP address or CIDR range"),
        ("example.com", "not an IPv4 or IPv6 address"),
        ("", "required"),
    ],
)
def test_bad_addresses_and_ranges_are_refused(given: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message) as caught:
        BlockedIp(tenant_id="acme", cidr=given)
    assert caught.value.errors()[0]["loc"] == ("cidr",)


def test_address_keys_sort_numerically() -> None:
    addresses = ["10.0.0.9", "10.0.0.10", "9.255.255.255", "255.0.0.0"]
    keys = sorted(addresses, key=lambda a: address_key(parse_address(a)))
    assert keys == sorted(addresses, key=lambda a: int(ipaddress.ip_address(a)))
    assert len(address_key(parse_address("::1"))) == len(address_key(parse_address("1.2.3.4")))


def test_parse_network_of_a_single_address() -> None:
    assert str(parse_network("192.0.2.1")) == "192.0.2.1/32"


def test_policies_are_typed_by_kind() -> None:
    policy = SecurityPolicy(tenant_id="acme", kind="password", settings={"kind": "password"})
    assert isinstance(policy.settings, PasswordPolicy)
    loaded = SecurityPolicy.model_validate(policy.model_dump(by_alias=True))
    assert loaded.settings == policy.settings
    with pytest.raises(pydantic.ValidationError, match="not session"):
        SecurityPolicy(tenant_id="acme", kind="session", settings=IpPolicy())
    with pytest.raises(pydantic.ValidationError, match="min_length"):
        PasswordPolicy(min_length=4)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        IpPolicy(unknown=True)  # type: ignore[call-arg]
