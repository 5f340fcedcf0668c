"""Field encryption: one data key per tenant, applied where the guard sees every value.

`TenantKeyring` (one per layer) holds PyMongo's `AsyncClientEncryption` and which data key is
each tenant's (key alt name = tenant id). `FieldCipher` (one per guarded collection) encrypts
the declared fields of inserts, replacements, updates and equality filters with the scope's
tenant key, and decrypts what reads return. Both sit below the guard, so the repositories and
Beanie's API on our documents go through them alike.

Crypto-shredding: `erase_key()` deletes the tenant's data key. libmongocrypt caches data keys,
so a `ClientEncryption` that used a key would keep decrypting: the keyring drops its own
cache and its `ClientEncryption` at once. Another process learns of the erasure within
`CAAS_TENANT_CACHE_TTL_SECONDS`: it trusts a tenant's key for that long, then reads the key
vault again and, when the key is gone or changed, drops its `ClientEncryption` too (libmongocrypt
is also told to expire its cached keys after the same time). Before decrypting, the keyring
checks that the ciphertext names the scope tenant's current key: another tenant's or an erased
key's ciphertext raises `TenantKeyErased` and is never handed to libmongocrypt.

The key is per tenant, not per placement: a document copied verbatim to another placement
(a future move between isolation models) stays readable, and erasing the key erases every
copy, backups included.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bson.binary import Binary
from pymongo import errors as pymongo_errors

from caas_data.config import EncryptionOptions
from caas_data.driver_errors import translate_driver_errors
from caas_data.engine.transactions import keyed_lock
from caas_data.errors import (
    FieldEncryptionError,
    RetryableError,
    TenantKeyErased,
    TenantMismatch,
    UnsafeOperation,
    optional_dependency,
)
from caas_data.tenancy.context import current_tenant_id
from caas_data.tenancy.ids import validate_tenant_id

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.asynchronous.encryption import AsyncClientEncryption
    from pymongo.asynchronous.mongo_client import AsyncMongoClient

__all__ = ["FieldCipher", "FieldEncryption", "TenantKeyring", "ciphertext_key_id"]


class FieldEncryption(StrEnum):
    """How a declared field is encrypted (`caas_encrypted_fields`, `caas_personal_fields`).

    Deterministic: the same value gives the same ciphertext under the tenant's key, so equality
    filters (`==`, `$in`, `$ne`, `$nin`) still work, at the cost of revealing which rows share
    a value. Random: nothing is revealed, and the field cannot be filtered on.
    """

    DETERMINISTIC = "deterministic"
    RANDOM = "random"


_ENCRYPTED_SUBTYPE = 6  # BSON Binary subtype of client-side encrypted values
_ALGORITHMS = {
    FieldEncryption.DETERMINISTIC: "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic",
    FieldEncryption.RANDOM: "AEAD_AES_256_CBC_HMAC_SHA_512-Random",
}
_LOGICAL = ("$and", "$or", "$nor")
_EQUALITY = frozenset({"$eq", "$ne"})
_MEMBERSHIP = frozenset({"$in", "$nin"})
_SET_OPERATORS = frozenset({"$set", "$setOnInsert"})
_HARMLESS_OPERATORS = frozenset({"$unset"})


def ciphertext_key_id(value: Any) -> uuid.UUID | None:
    """The data key an encrypted value names (FLE blob: subtype byte, then the key's UUID)."""
    if not isinstance(value, Binary) or value.subtype != _ENCRYPTED_SUBTYPE or len(value) < 17:
        return None
    return uuid.UUID(bytes=bytes(value[1:17]))


class _Handle:
    """One `AsyncClientEncryption` and the operations still using it."""

    __slots__ = ("client_encryption", "retired", "users")

    def __init__(self, client_encryption: AsyncClientEncryption[Any]) -> None:
        self.client_encryption = client_encryption
        self.users = 0
        self.retired = False


class TenantKeyring:
    """The tenants' data keys of one layer, and the `ClientEncryption` that uses them."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        key_vault: AsyncCollection[dict[str, Any]],
        options: EncryptionOptions,
        *,
        ttl: float,
    ) -> None:
        with optional_dependency("pymongocrypt", extra="encryption", feature="field encryption"):
            import pymongocrypt  # noqa: F401
        self._client = client
        self._vault = key_vault
        self._options = options
        self._ttl = ttl
        self._keys: dict[str, tuple[float, uuid.UUID]] = {}
        self._handle: _Handle | None = None
        self._vault_indexed = False

    @property
    def options(self) -> EncryptionOptions:
        """What this keyring was configured with."""
        return self._options

    @property
    def key_vault_namespace(self) -> str:
        """`database.collection` of the key vault."""
        return self._vault.full_name

    # -- the ClientEncryption, dropped whenever a key is erased ---------------------------

    def _new_client_encryption(self) -> AsyncClientEncryption[Any]:
        from pymongo.asynchronous.encryption import AsyncClientEncryption

        # libmongocrypt also forgets keys after the TTL: a bound even if a check were missed.
        expiry = max(1, int(self._ttl * 1000))
        return AsyncClientEncryption(
            dict(self._options.kms_providers),
            self.key_vault_namespace,
            self._client,
            self._client.codec_options,
            kms_tls_options=(
                dict(self._options.kms_tls_options) if self._options.kms_tls_options else None
            ),
            key_expiration_ms=expiry,
        )

    @asynccontextmanager
    async def _lease(self) -> AsyncIterator[AsyncClientEncryption[Any]]:
        handle = self._handle
        if handle is None:
            handle = self._handle = _Handle(self._new_client_encryption())
        handle.users += 1
        try:
            yield handle.client_encryption
        finally:
            handle.users -= 1
            if handle.retired and handle.users == 0:
                await handle.client_encryption.close()

    async def drop_cached_keys(self) -> None:
        """Forget every key this process holds: the cache and libmongocrypt's (its handle)."""
        self._keys.clear()
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.retired = True
            if handle.users == 0:
                await handle.client_encryption.close()

    # -- which key is the tenant's --------------------------------------------------------

    async def key_id(self, tenant_id: str) -> uuid.UUID | None:
        """The id of the tenant's data key (None when it has none): no key material."""
        validate_tenant_id(tenant_id)
        return await self._key(tenant_id, create=False)

    async def _key(self, tenant_id: str, *, create: bool) -> uuid.UUID | None:
        """The tenant's data key, trusted for the TTL; with `create`, made when missing."""
        cached = self._keys.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with keyed_lock(self, ("data-key", tenant_id)):  # one lookup per tenant at a time
            now_cached = self._keys.get(tenant_id)
            if now_cached is not None and now_cached is not cached:
                return now_cached[1]  # refreshed while this task waited
            found = await self._read_key(tenant_id)
            if found is None and create:
                found = await self._create_key(tenant_id)
            if cached is not None and cached[1] != found:
                # Erased (or replaced) by another process: libmongocrypt may still hold the
                # old key material, so its handle goes too.
                await self.drop_cached_keys()
            if found is not None and self._ttl > 0:
                self._keys[tenant_id] = (time.monotonic() + self._ttl, found)
            else:
                self._keys.pop(tenant_id, None)
            return found

    async def _read_key(self, tenant_id: str) -> uuid.UUID | None:
        with translate_driver_errors(tenant_id=tenant_id):
            raw = await self._vault.find_one({"keyAltNames": tenant_id}, {"_id": 1})
        if raw is None:
            return None
        key = raw["_id"]
        return key.as_uuid() if isinstance(key, Binary) else uuid.UUID(str(key))

    async def _create_key(self, tenant_id: str) -> uuid.UUID:
        await self._index_vault()
        try:
            async with self._lease() as encryption:
                key = await encryption.create_data_key(
                    self._options.kms_provider,
                    master_key=(
                        dict(self._options.master_key) if self._options.master_key else None
                    ),
                    key_alt_names=[tenant_id],
                )
            return key.as_uuid()
        except pymongo_errors.EncryptionError as exc:
            if not isinstance(exc.cause, pymongo_errors.DuplicateKeyError):
                raise _encryption_error(exc, tenant_id, "could not create its data key") from exc
        found = await self._read_key(tenant_id)  # another process created it first
        if found is None:  # pragma: no cover - created and erased in between
            raise FieldEncryptionError("the tenant's data key vanished", tenant_id=tenant_id)
        return found

    async def _index_vault(self) -> None:
        """One key per alt name, as MongoDB's key vault guidance asks (races create one)."""
        if self._vault_indexed:
            return
        with translate_driver_errors():
            await self._vault.create_index(
                "keyAltNames",
                unique=True,
                partialFilterExpression={"keyAltNames": {"$exists": True}},
                name="key_alt_names_unique",
            )
        self._vault_indexed = True

    # -- operator operations --------------------------------------------------------------

    async def ensure_key(self, tenant_id: str) -> uuid.UUID:
        """The tenant's data key, created when it has none (operator: outside tenant scopes)."""
        _operator_only("ensure_key")
        validate_tenant_id(tenant_id)
        key = await self._key(tenant_id, create=True)
        assert key is not None
        return key

    async def erase_key(self, tenant_id: str) -> int:
        """Crypto-shred a tenant: delete its data key, so its ciphertext is unreadable.

        Every copy (other placements, backups) becomes unreadable with it. This process
        forgets the key at once; other processes within the resolver's TTL. A later write of
        an encrypted field creates a new key; what was written before stays unreadable.
        Returns how many keys were deleted (0 when it had none).

        Raises:
            TenantMismatch: called inside a tenant scope (an operator operation).
        """
        _operator_only("erase_key")
        validate_tenant_id(tenant_id)
        with translate_driver_errors(tenant_id=tenant_id):
            result = await self._vault.delete_many({"keyAltNames": tenant_id})
        await self.drop_cached_keys()
        return int(result.deleted_count)

    async def close(self) -> None:
        """Release libmongocrypt's resources."""
        await self.drop_cached_keys()

    # -- values ---------------------------------------------------------------------------

    async def encrypt(self, value: Any, tenant_id: str, algorithm: FieldEncryption) -> Binary:
        """`value` as ciphertext under the tenant's key (created on first use)."""
        if ciphertext_key_id(value) is not None:
            raise UnsafeOperation(
                "an encrypted field takes a plain value, not ciphertext", tenant_id=tenant_id
            )
        key = await self._key(tenant_id, create=True)
        assert key is not None
        try:
            async with self._lease() as encryption:
                return await encryption.encrypt(
                    value, _ALGORITHMS[algorithm], key_id=Binary.from_uuid(key)
                )
        except pymongo_errors.EncryptionError as exc:
            raise _encryption_error(exc, tenant_id, "could not encrypt a field") from exc

    async def decrypt(self, value: Binary, tenant_id: str) -> Any:
        """The plain value of ciphertext, which must name the tenant's current key."""
        named = ciphertext_key_id(value)
        current = await self._key(tenant_id, create=False)
        if named is None or named != current:
            raise TenantKeyErased(
                f"encrypted data of tenant {tenant_id!r} is unreadable: it names a data key "
                "that is not the tenant's (its key was erased)",
                tenant_id=tenant_id,
            )
        try:
            async with self._lease() as encryption:
                return await encryption.decrypt(value)
        except pymongo_errors.EncryptionError as exc:
            if "not all keys requested were satisfied" in str(exc):
                # Erased by another process since this one last looked.
                self._keys.pop(tenant_id, None)
                raise TenantKeyErased(
                    f"encrypted data of tenant {tenant_id!r} is unreadable: its data key "
                    "was erased",
                    tenant_id=tenant_id,
                    driver_error=exc,
                ) from exc
            raise _encryption_error(exc, tenant_id, "could not decrypt a field") from exc


def _operator_only(operation: str) -> None:
    tenant = current_tenant_id()
    if tenant is not None:
        raise TenantMismatch(
            f"{operation} is an operator operation: run it outside tenant scopes",
            tenant_id=tenant,
        )


def _encryption_error(
    error: pymongo_errors.EncryptionError, tenant_id: str, what: str
) -> FieldEncryptionError | RetryableError:
    cause = error.cause
    if isinstance(cause, pymongo_errors.ConnectionFailure | pymongo_errors.ExecutionTimeout):
        return RetryableError(
            f"{what}: key vault or KMS unavailable", tenant_id=tenant_id, driver_error=error
        )
    return FieldEncryptionError(
        f"tenant {tenant_id!r}: {what} ({type(cause).__name__})",
        tenant_id=tenant_id,
        driver_error=error,
    )


def keyring_for(
    client: AsyncMongoClient[dict[str, Any]],
    platform_database: AsyncDatabase[dict[str, Any]],
    options: EncryptionOptions,
    *,
    ttl: float,
) -> TenantKeyring:
    """The keyring of a layer, its key vault in the platform database."""
    return TenantKeyring(client, platform_database[options.key_vault], options, ttl=ttl)


class FieldCipher:
    """Encrypts and decrypts one collection's declared fields for one tenant scope."""

    __slots__ = ("_fields", "_keyring", "_tenant_id")

    def __init__(
        self, keyring: TenantKeyring, tenant_id: str, fields: Mapping[str, FieldEncryption]
    ) -> None:
        self._keyring = keyring
        self._tenant_id = tenant_id
        self._fields = fields

    @property
    def fields(self) -> Mapping[str, FieldEncryption]:
        """Stored field name -> algorithm."""
        return self._fields

    def _refuse(self, message: str) -> UnsafeOperation:
        return UnsafeOperation(message, tenant_id=self._tenant_id)

    def _field_of(self, path: str) -> str | None:
        """The encrypted field `path` names; a path inside one is refused (it is opaque)."""
        top = path.split(".", 1)[0]
        if top not in self._fields:
            return None
        if top != path:
            raise self._refuse(f"{path!r} reaches inside the encrypted field {top!r}")
        return top

    async def _encrypt(self, name: str, value: Any) -> Any:
        if value is None:  # null stays null: "not set" remains queryable
            return None
        return await self._keyring.encrypt(value, self._tenant_id, self._fields[name])

    # -- writes ---------------------------------------------------------------------------

    async def encrypt_document(self, document: dict[str, Any]) -> dict[str, Any]:
        """A new document or replacement with its declared fields encrypted."""
        if not self._fields or not any(name in document for name in self._fields):
            return document
        result = dict(document)
        for name in self._fields:
            if name in result:
                result[name] = await self._encrypt(name, result[name])
        return result

    async def encrypt_update(self, update: Any) -> Any:
        """An update (already guarded) whose `$set`s of declared fields are encrypted."""
        if not self._fields:
            return update
        if isinstance(update, list):
            for stage in update:
                for name, body in stage.items():
                    paths = body if isinstance(body, list) else list(body)
                    for path in paths:
                        if self._field_of(path) is not None and name != "$unset":
                            raise self._refuse(
                                f"an update pipeline cannot compute the encrypted field {path!r}"
                            )
            return update
        result: dict[str, Any] = {}
        for operator, body in update.items():
            new_body = dict(body)
            for path, value in body.items():
                name = self._field_of(path)
                target = self._field_of(value) if operator == "$rename" else None
                if name is None and target is None:
                    continue
                if operator in _SET_OPERATORS and name is not None:
                    new_body[path] = await self._encrypt(name, value)
                elif operator not in _HARMLESS_OPERATORS:
                    raise self._refuse(
                        f"{operator} cannot work on the encrypted field {name or target!r} "
                        "(the server sees only ciphertext): $set or $unset it"
                    )
            result[operator] = new_body
        return result

    # -- filters --------------------------------------------------------------------------

    def needs_filter_encryption(self, query: Mapping[str, Any]) -> bool:
        """Whether `query` (a guarded snapshot) names an encrypted field anywhere."""
        for key, value in query.items():
            if key in _LOGICAL:
                if any(self.needs_filter_encryption(clause) for clause in value):
                    return True
            elif key.split(".", 1)[0] in self._fields:
                return True
        return False

    async def encrypt_filter(self, query: dict[str, Any]) -> dict[str, Any]:
        """A guarded filter whose conditions on encrypted fields compare ciphertext.

        Deterministic fields allow equality (`value`, `$eq`, `$ne`, `$in`, `$nin`); random
        ones only `None` and `$exists`. Anything else could never match and is refused.
        """
        if not self._fields or not self.needs_filter_encryption(query):
            return query
        result: dict[str, Any] = {}
        for key, value in query.items():
            if key in _LOGICAL:
                result[key] = [await self.encrypt_filter(clause) for clause in value]
                continue
            name = self._field_of(key)
            result[key] = value if name is None else await self._condition(name, value)
        return result

    async def _condition(self, name: str, condition: Any) -> Any:
        operators = isinstance(condition, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in condition
        )
        if not operators:
            return await self._comparand(name, condition)
        result: dict[str, Any] = {}
        for operator, operand in dict(condition).items():
            if operator == "$exists":
                result[operator] = operand
            elif operator in _EQUALITY:
                result[operator] = await self._comparand(name, operand)
            elif operator in _MEMBERSHIP and isinstance(operand, list | tuple):
                result[operator] = [await self._comparand(name, item) for item in operand]
            else:
                raise self._refuse(
                    f"{operator} cannot be evaluated on the encrypted field {name!r}; only "
                    "equality on a deterministic field"
                )
        return result

    async def _comparand(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        if self._fields[name] is not FieldEncryption.DETERMINISTIC:
            raise self._refuse(
                f"{name!r} is encrypted at random and cannot be filtered on; declare it "
                "deterministic for equality lookups"
            )
        return await self._encrypt(name, value)

    # -- reads ----------------------------------------------------------------------------

    async def decrypt_document(self, document: Any) -> Any:
        """A read document with its declared fields decrypted."""
        if not isinstance(document, dict) or not self._fields:
            return document
        for name in self._fields:
            value = document.get(name)
            if isinstance(value, Binary) and value.subtype == _ENCRYPTED_SUBTYPE:
                document[name] = await self._keyring.decrypt(value, self._tenant_id)
        return document

    async def decrypt_any(self, value: Any) -> Any:
        """Every ciphertext anywhere in `value` decrypted (aggregations, joins, events)."""
        if isinstance(value, Binary):
            if value.subtype == _ENCRYPTED_SUBTYPE:
                return await self._keyring.decrypt(value, self._tenant_id)
            return value
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict | list | Binary):
                    value[key] = await self.decrypt_any(item)
            return value
        if isinstance(value, list):
            return [await self.decrypt_any(item) for item in value]
        return value
