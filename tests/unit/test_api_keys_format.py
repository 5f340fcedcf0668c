"""API key format, hashing and scope matching (no server needed)."""

from __future__ import annotations

import pydantic
import pytest
from beanie import PydanticObjectId

from caas_data.documents.platform import ApiKey
from caas_data.repositories.platform.api_keys import ApiKeyPrincipal, _split, hash_api_key


def principal(*scopes: str) -> ApiKeyPrincipal:
    return ApiKeyPrincipal("acme", PydanticObjectId(), frozenset(scopes), None, None)


def test_only_well_formed_keys_have_a_prefix() -> None:
    secret = "x" * 43
    assert _split(f"caas_abcdefghij12_{secret}") == "abcdefghij12"
    assert _split(f"caas_abcdefghij12_{secret[:10]}") is None  # secret too short
    assert _split(f"other_abcdefghij12_{secret}") is None
    assert _split(f"caas_short_{secret}") is None
    assert _split("") is None
    assert _split(None) is None  # type: ignore[arg-type]


def test_the_hash_is_sha256_hex_and_differs_per_key() -> None:
    assert len(hash_api_key("caas_a")) == 64
    assert hash_api_key("caas_a") != hash_api_key("caas_b")


def test_scopes_cover_their_sub_scopes() -> None:
    p = principal("messages", "users:read", "files:*")
    assert p.allows("messages") and p.allows("messages:write")
    assert p.allows("users:read") and not p.allows("users:write")
    assert p.allows("files:upload") and not p.allows("files")
    assert not p.allows("messagesx") and not p.allows("billing")


def test_scopes_are_validated_and_deduplicated() -> None:
    key = ApiKey(
        tenant_id="acme",
        name="ci",
        prefix="abcdefghij12",
        key_hash="0" * 64,
        scopes=["b:read", "a", "b:read"],
    )
    assert key.scopes == ["a", "b:read"]
    with pytest.raises(pydantic.ValidationError, match="invalid scope"):
        ApiKey(tenant_id="acme", name="x", prefix="abcdefghij12", key_hash="0" * 64, scopes=["A B"])
