"""Key material checks: public keys in several encodings are accepted, private ones refused."""

from __future__ import annotations

import base64
import json

import pytest
from beanie import PydanticObjectId
from pydantic import ValidationError

from caas_data.documents.saas.encryption import (
    PrekeyBundle,
    SignedPrekey,
    UserKey,
    private_field_names,
    public_key_bytes,
    signature_bytes,
)

KEY = bytes(range(1, 33))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "given",
    [
        KEY,
        bytearray(KEY),
        b"\x05" + KEY,  # Signal's serialized form
        base64.b64encode(KEY).decode(),
        base64.b64encode(b"\x05" + KEY).decode(),
        b64url(KEY),
        f"  {base64.b64encode(KEY).decode()}\n",
        {"kty": "OKP", "crv": "X25519", "x": b64url(KEY)},
        json.dumps({"kty": "OKP", "crv": "Ed25519", "x": b64url(KEY)}),
    ],
    ids=["raw", "bytearray", "signal", "b64", "b64-signal", "b64url", "text", "jwk", "jwk-json"],
)
def test_public_keys_are_normalised_to_32_raw_bytes(given: object) -> None:
    assert public_key_bytes(given) == KEY


PEM_PRIVATE = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VuBCIEIHBgJSkzrG56SpsOsmMsWgQKhyV624aaPszD0WtyTyZH\n"
    "-----END PRIVATE KEY-----\n"
)


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (PEM_PRIVATE, "PEM private key"),
        (PEM_PRIVATE.encode(), "PEM private key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----", "private"),
        ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEA\n-----END PUBLIC KEY-----", "PEM is not"),
        ({"kty": "OKP", "crv": "X25519", "x": b64url(KEY), "d": b64url(KEY)}, "private JSON Web"),
        (json.dumps({"kty": "OKP", "crv": "X25519", "x": "a", "d": "b"}), "private JSON Web"),
        ({"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}, "OKP"),
        (bytes(range(64)), "Ed25519 private key"),
        (KEY[:31], "got 31"),
        (b"\x06" + KEY, "got 33"),
        (KEY + KEY[:1], "got 33"),
        (bytes(32), "all-zero"),
        ("not base64 at all!", "not valid base64"),
        (12345, "bytes, base64 text or a JSON Web Key"),
    ],
)
def test_anything_but_a_public_key_is_refused(given: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        public_key_bytes(given)


def test_signatures_must_be_64_bytes() -> None:
    assert signature_bytes(base64.b64encode(bytes(64)).decode()) == bytes(64)
    with pytest.raises(ValueError, match="64 bytes, got 32"):
        signature_bytes(KEY)


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"private_key": "x"}, ["private_key"]),
        ({"privateKey": "x", "ok": 1}, ["privateKey"]),
        ({"identity": {"PrivKey": "x"}}, ["identity.PrivKey"]),
        ({"keys": [{"key_id": 1, "private": "x"}]}, ["keys.0.private"]),
        ({"secret_key": "x"}, ["secret_key"]),
        ({"privacy": "public", "public_key": "x"}, []),
    ],
)
def test_private_field_names_are_found_at_any_depth(
    data: dict[str, object], names: list[str]
) -> None:
    assert private_field_names(data) == names


def test_documents_store_raw_keys_and_refuse_private_fields() -> None:
    user = PydanticObjectId()
    stored = UserKey(tenant_id="t", user_id=user, device_id="d", identity_key=b"\x05" + KEY)
    assert stored.identity_key == KEY
    with pytest.raises(ValidationError, match="private key material"):
        UserKey(tenant_id="t", user_id=user, device_id="d", identity_key=KEY, private_key=KEY)
    with pytest.raises(ValidationError, match=r"signed_prekey\.signature"):
        PrekeyBundle(
            tenant_id="t",
            user_id=user,
            device_id="d",
            signed_prekey={"key_id": 1, "public_key": KEY, "signature": b"short"},
        )
    with pytest.raises(ValidationError, match="key_id"):
        SignedPrekey(key_id=2**24, public_key=KEY, signature=bytes(64))


def test_bundle_lists_only_unclaimed_prekeys_as_available() -> None:
    bundle = PrekeyBundle(
        tenant_id="t",
        user_id=PydanticObjectId(),
        device_id="d",
        one_time_prekeys=[
            {"key_id": 1, "public_key": KEY},
            {"key_id": 2, "public_key": KEY, "claimed_at": "2026-01-01T00:00:00Z"},
        ],
    )
    assert [k.key_id for k in bundle.available] == [1]
