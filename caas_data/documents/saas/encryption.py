"""Encryption domain (seed: saas/encryption): Signal-style public keys, never private ones.

`user_keys` holds one identity public key per (user, device); `prekey_bundles` holds, per
(user, device), the signed prekey and the one-time prekeys that other users claim to open a
session. Keys are stored as their raw 32 bytes (BSON binary). A Signal-serialized key (0x05
type byte + 32 bytes) is accepted and stored without its type byte.

The server must never hold private key material, so anything that looks like it is refused
with a clear error before it is stored: PEM "PRIVATE KEY" blocks, JWKs with a private part
("d"), any field named private*, and raw keys of a length a public key cannot have.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final

from beanie import PydanticObjectId
from pydantic import BaseModel, BeforeValidator, Field, model_validator
from pymongo import ASCENDING, IndexModel

from caas_data.documents.base import TenantDocument, utcnow

__all__ = [
    "DOCUMENTS",
    "KEY_BYTES",
    "SIGNATURE_BYTES",
    "OneTimePrekey",
    "PrekeyBundle",
    "PublicKey",
    "Signature",
    "SignedPrekey",
    "UserKey",
    "private_field_names",
    "public_key_bytes",
    "signature_bytes",
]

KEY_BYTES: Final = 32  # Curve25519 / Ed25519 public key
SIGNATURE_BYTES: Final = 64  # XEdDSA / Ed25519 signature
_DJB_TYPE: Final = 0x05  # Signal's type byte in front of a serialized Curve25519 key
_MAX_PREKEY_ID: Final = 0xFFFFFF  # Signal prekey ids are 24-bit
_OKP_CURVES: Final = frozenset({"X25519", "Ed25519"})


def _looks_private(text: str) -> bool:
    return "PRIVATE KEY" in text.upper()


def _is_private_name(name: str) -> bool:
    """`private_key`, `privateKey`, `priv_key`, `secretKey`...: names of private material."""
    letters = re.sub(r"[^a-z]", "", name.lower())
    return letters.startswith(("private", "privkey")) or letters == "secretkey"


def _decode_text(value: str, what: str) -> bytes:
    """Base64 (standard or URL-safe, padding optional) to bytes; PEM is refused."""
    text = value.strip()
    if _looks_private(text):
        raise ValueError(f"{what} is a PEM private key: only public keys may be stored")
    if text.startswith("-----BEGIN"):
        raise ValueError(f"{what}: PEM is not accepted; send the raw key bytes or their base64")
    if text.startswith("{"):
        try:
            jwk = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} is neither base64 nor a JSON Web Key") from exc
        return _from_jwk(jwk, what)
    compact = text.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc


def _from_jwk(jwk: Any, what: str) -> bytes:
    if not isinstance(jwk, Mapping):
        raise ValueError(f"{what}: a JSON Web Key must be an object")
    if "d" in jwk:
        raise ValueError(f"{what} is a private JSON Web Key (it has 'd'): send the public key")
    if jwk.get("kty") != "OKP" or jwk.get("crv") not in _OKP_CURVES or "x" not in jwk:
        raise ValueError(f"{what}: only OKP JSON Web Keys on X25519 or Ed25519 are accepted")
    x = jwk["x"]
    if not isinstance(x, str):
        raise ValueError(f"{what}: the JWK's 'x' must be base64url text")
    return _decode_text(x, what)


def _raw_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if b"PRIVATE KEY" in raw.upper():
            raise ValueError(f"{what} is a PEM private key: only public keys may be stored")
        if raw.startswith(b"-----BEGIN"):
            raise ValueError(f"{what}: PEM is not accepted; send the raw key bytes")
        return raw
    if isinstance(value, str):
        return _decode_text(value, what)
    if isinstance(value, Mapping):
        return _from_jwk(value, what)
    raise ValueError(f"{what} must be bytes, base64 text or a JSON Web Key")


def public_key_bytes(value: Any) -> bytes:
    """The 32 raw bytes of a Curve25519/Ed25519 public key given as bytes, base64 or JWK.

    Raises:
        ValueError: not a public key (private material, PEM, wrong length...).
    """
    raw = _raw_bytes(value, "the key")
    if len(raw) == KEY_BYTES + 1 and raw[0] == _DJB_TYPE:
        raw = raw[1:]
    if len(raw) == 2 * KEY_BYTES:
        raise ValueError(
            "64 bytes looks like an Ed25519 private key (seed + public key): "
            "only the 32-byte public key may be stored"
        )
    if len(raw) != KEY_BYTES:
        raise ValueError(
            f"a public key has {KEY_BYTES} bytes (or {KEY_BYTES + 1} with Signal's 0x05 type "
            f"byte), got {len(raw)}"
        )
    if raw == bytes(KEY_BYTES):
        raise ValueError("an all-zero key is not a valid public key")
    return raw


def signature_bytes(value: Any) -> bytes:
    """The 64 raw bytes of a signature given as bytes or base64."""
    raw = _raw_bytes(value, "the signature")
    if len(raw) != SIGNATURE_BYTES:
        raise ValueError(f"a signature has {SIGNATURE_BYTES} bytes, got {len(raw)}")
    return raw


PublicKey = Annotated[bytes, BeforeValidator(public_key_bytes)]
Signature = Annotated[bytes, BeforeValidator(signature_bytes)]


def private_field_names(data: Any, path: str = "") -> list[str]:
    """Dotted names of the fields, at any depth, whose name says they hold a private key."""
    if not isinstance(data, Mapping):
        return []
    found = []
    for key, value in data.items():
        name = f"{path}{key}"
        if isinstance(key, str) and _is_private_name(key):
            found.append(name)
        found += private_field_names(value, name + ".")
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                found += private_field_names(item, f"{name}.{i}.")
    return found


class _PublicOnly(BaseModel):
    """Refuses input that carries a field named private* (at any depth).

    Unknown fields are otherwise ignored by pydantic, which would drop a private key silently
    and make the caller believe it was stored; an error tells them to stop sending it.
    """

    @model_validator(mode="before")
    @classmethod
    def _no_private_fields(cls, data: Any) -> Any:
        names = private_field_names(data)
        if names:
            raise ValueError(
                f"private key material must never reach the server (fields {', '.join(names)})"
            )
        return data


class UserKey(_PublicOnly, TenantDocument):
    """The identity public key of one device of a user."""

    user_id: PydanticObjectId
    device_id: str = Field(min_length=1, max_length=128)
    registration_id: int | None = Field(default=None, ge=1, le=0x7FFFFFFF)
    identity_key: PublicKey

    class Settings:
        name = "user_keys"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("device_id", ASCENDING)],
                unique=True,
                name="tenant_user_device_unique",
            ),
        ]


class SignedPrekey(_PublicOnly):
    """The medium-term prekey, signed with the identity key (rotated every few weeks)."""

    key_id: int = Field(ge=0, le=_MAX_PREKEY_ID)
    public_key: PublicKey
    signature: Signature
    created_at: datetime = Field(default_factory=utcnow)


class OneTimePrekey(_PublicOnly):
    """A prekey handed out at most once; `claim_token` marks who took it."""

    key_id: int = Field(ge=0, le=_MAX_PREKEY_ID)
    public_key: PublicKey
    claimed_at: datetime | None = None
    claimed_by: PydanticObjectId | None = None
    claim_token: str | None = Field(default=None, repr=False)


class PrekeyBundle(_PublicOnly, TenantDocument):
    """The prekeys of one device: a signed prekey and a supply of one-time prekeys.

    Claimed one-time prekeys stay in the list (marked) for a while, so a claimer can read
    back the key it marked; uploads prune them later.
    """

    user_id: PydanticObjectId
    device_id: str = Field(min_length=1, max_length=128)
    signed_prekey: SignedPrekey | None = None
    one_time_prekeys: list[OneTimePrekey] = Field(default_factory=list)
    last_claimed_at: datetime | None = None

    class Settings:
        name = "prekey_bundles"
        indexes = [
            IndexModel(
                [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("device_id", ASCENDING)],
                unique=True,
                name="tenant_user_device_unique",
            ),
        ]

    @property
    def available(self) -> list[OneTimePrekey]:
        """The one-time prekeys nobody claimed yet, oldest first."""
        return [k for k in self.one_time_prekeys if k.claimed_at is None]


DOCUMENTS: tuple[type[TenantDocument], ...] = (UserKey, PrekeyBundle)
