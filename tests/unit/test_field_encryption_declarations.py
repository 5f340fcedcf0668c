"""Encrypted-field declarations are checked when a class is read, before any I/O."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from bson.binary import Binary

from caas_data import (
    CaasDataError,
    ConfigurationError,
    EncryptionOptions,
    FieldEncryption,
    FieldEncryptionError,
    PlatformDocument,
    TenantDocument,
    TenantKeyErased,
)
from caas_data.documents.registry import spec_of
from caas_data.saas import User, UserDevice
from caas_data.tenancy.field_encryption import ciphertext_key_id


def _tenant_class(fields: dict[str, Any], name: str) -> type[TenantDocument]:
    class Declared(TenantDocument):
        caas_encrypted_fields: ClassVar[dict[str, FieldEncryption | str]] = fields
        email: str | None = None
        code: str = "x"

        class Settings:
            pass

    Declared.Settings.name = name  # type: ignore[attr-defined]
    return Declared


def test_a_valid_declaration_maps_stored_names_to_algorithms() -> None:
    spec = spec_of(_tenant_class({"email": "deterministic", "code": "random"}, "decl_ok"))
    assert spec.encrypted == {
        "email": FieldEncryption.DETERMINISTIC,
        "code": FieldEncryption.RANDOM,
    }


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"missing": "random"}, "decl_missing"),
        ({"email": "rot13"}, "decl_algorithm"),
        ({"tenant_id": "deterministic"}, "decl_tenant"),
        ({"created_at": "random"}, "decl_owned"),
    ],
)
def test_bad_declarations_are_refused(fields: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError):
        spec_of(_tenant_class(fields, name))


def test_platform_documents_cannot_declare_encrypted_fields() -> None:
    class PlatformRow(PlatformDocument):
        caas_encrypted_fields: ClassVar[dict[str, FieldEncryption | str]] = {"secret": "random"}
        secret: str

        class Settings:
            name = "decl_platform"

    with pytest.raises(ConfigurationError, match="tenant"):
        spec_of(PlatformRow)


def test_shipped_personal_fields_are_declared_but_not_always_encrypted() -> None:
    assert spec_of(User).personal == {"email": FieldEncryption.DETERMINISTIC}
    assert spec_of(UserDevice).personal == {"push_token": FieldEncryption.DETERMINISTIC}
    assert spec_of(User).encrypted == {} and spec_of(UserDevice).encrypted == {}


def test_options_check_the_master_key_and_never_show_it() -> None:
    key = bytes(range(96))
    options = EncryptionOptions.local(key, personal_fields=True)
    assert options.personal_fields and options.kms_provider == "local"
    assert repr(key) not in repr(options) and "key=" not in repr(options).replace("key_vault", "")
    with pytest.raises(ValueError):
        EncryptionOptions.local(b"short")
    with pytest.raises(ValueError):
        EncryptionOptions({"local": {"key": key}}, kms_provider="aws")


def test_ciphertext_names_its_key_and_errors_are_in_the_tree() -> None:
    key = bytes(range(16))
    assert ciphertext_key_id(Binary(b"\x01" + key + b"payload", 6)).bytes == key
    assert ciphertext_key_id(Binary(b"\x01" + key, 4)) is None
    assert ciphertext_key_id("plain") is None
    assert issubclass(TenantKeyErased, FieldEncryptionError)
    assert issubclass(FieldEncryptionError, CaasDataError)
