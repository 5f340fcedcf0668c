"""Encryption repositories: identity keys per device, prekey bundles and one-time claims.

A one-time prekey must reach at most one requester. Each claim is one atomic update of the
device's bundle document: the positional operator marks the first unclaimed prekey with the
claimer's random token (`one_time_prekeys.$`), so of any number of concurrent claimers each
marks a different prekey or, once none is left, nothing. The claimer then reads the key that
carries its token. No read-then-write window, no retries, one document per device (the
supply of a device is small: Signal uploads 100 at a time).

Why not `$pop` with `find_one_and_update(return_document=BEFORE)`: it needs the pre-image to
know which key was popped, and not every MongoDB-compatible server returns a consistent
pre-image under concurrency (the embedded test server does not); `$pop` guarded by a `__v`
check would be correct but makes N concurrent claimers retry O(N^2) times.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, TypeVar

from beanie import PydanticObjectId

from caas_data.documents.base import BaseDocument, utcnow
from caas_data.documents.saas.encryption import (
    OneTimePrekey,
    PrekeyBundle,
    SignedPrekey,
    UserKey,
    private_field_names,
)
from caas_data.engine.transactions import transaction
from caas_data.errors import (
    DocumentValidationError,
    DuplicateError,
    NotFoundError,
    RepositoryError,
)
from caas_data.repositories.base import Repository

__all__ = [
    "DEFAULT_LOW_SUPPLY_THRESHOLD",
    "MAX_ONE_TIME_PREKEYS",
    "MAX_PREKEY_UPLOAD",
    "PrekeyBundleRepository",
    "PrekeyClaim",
    "UserKeyRepository",
]

DEFAULT_LOW_SUPPLY_THRESHOLD: Final = 10
MAX_PREKEY_UPLOAD: Final = 100
MAX_ONE_TIME_PREKEYS: Final = 500  # per device, claimed-but-not-pruned ones included
# A claimed prekey stays in the bundle this long so its claimer can read it back.
_PRUNE_CLAIMED_AFTER: Final = timedelta(hours=1)

K = TypeVar("K", bound=BaseDocument)


def _device_key(user_id: PydanticObjectId, device_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "device_id": device_id}


class _KeyRepository(Repository[K]):
    """Shared by both key repositories: refuse private material before validation.

    The documents refuse it too; checking here first lets the error name the offending
    fields (a model-level check can only blame the whole document).
    """

    def _validate(self, data: K | Mapping[str, Any]) -> K:
        if isinstance(data, Mapping):
            names = private_field_names(data)
            if names:
                raise DocumentValidationError(
                    f"private key material must never reach the server: {', '.join(names)}",
                    fields=tuple(names),
                    document_type=self.document_type,
                )
        return super()._validate(data)

    async def _remove_device_keys(self, user_id: PydanticObjectId, device_id: str) -> int:
        result = await self.collection().delete_many(_device_key(user_id, device_id))
        return int(result.deleted_count)


class UserKeyRepository(_KeyRepository[UserKey]):
    """Identity public keys, one per (user, device)."""

    document_type = UserKey

    async def publish(
        self,
        user_id: PydanticObjectId,
        device_id: str,
        identity_key: Any,
        *,
        registration_id: int | None = None,
    ) -> UserKey:
        """Store a device's identity public key (bytes, base64 or a public JWK).

        A different key than the stored one means the device re-registered: its prekeys were
        signed with the old identity, so they are dropped in the same transaction.

        Raises:
            DocumentValidationError: not a public key (private material, wrong length...).
        """
        new = self._validate(
            {
                "user_id": user_id,
                "device_id": device_id,
                "identity_key": identity_key,
                "registration_id": registration_id,
            }
        )
        key = _device_key(user_id, device_id)
        bundles = self.layer.repo(PrekeyBundleRepository)

        async def publish() -> UserKey:
            before = await self.find_one(key)
            stored = await self._upsert(
                key,
                {"$set": {"identity_key": new.identity_key, "registration_id": registration_id}},
            )
            if before is not None and before.identity_key != new.identity_key:
                await bundles._remove_device_keys(user_id, device_id)
            return stored

        return await transaction(self.layer, publish)

    async def get_by_device(self, user_id: PydanticObjectId, device_id: str) -> UserKey:
        """The identity key of one device; `NotFoundError` if it published none."""
        found = await self.find_one(_device_key(user_id, device_id))
        if found is None:
            raise NotFoundError(
                f"device {device_id!r} of user {user_id} has no identity key",
                document_type=UserKey,
            )
        return found

    async def list_by_user(self, user_id: PydanticObjectId) -> list[UserKey]:
        """The identity keys of all devices of a user (a message is encrypted for each)."""
        page = await self.find({"user_id": user_id}, sort="device_id", limit=1000)
        return page.items

    async def delete_by_device(self, user_id: PydanticObjectId, device_id: str) -> bool:
        """Drop a device's identity key and prekeys together; False if it had none."""
        bundles = self.layer.repo(PrekeyBundleRepository)

        async def remove() -> int:
            removed = await self._remove_device_keys(user_id, device_id)
            return removed + await bundles._remove_device_keys(user_id, device_id)

        return bool(await transaction(self.layer, remove))


@dataclass(frozen=True, slots=True)
class PrekeyClaim:
    """What a requester needs to open a session with one device (a Signal PreKeyBundle).

    `one_time_prekey` is None when the supply ran out (the session then starts from the
    signed prekey alone, as Signal allows). `low_supply` tells the device to upload more.
    """

    user_id: PydanticObjectId
    device_id: str
    registration_id: int | None
    identity_key: bytes
    signed_prekey: SignedPrekey
    one_time_prekey: OneTimePrekey | None
    remaining: int
    low_supply: bool


class PrekeyBundleRepository(_KeyRepository[PrekeyBundle]):
    """Signed and one-time prekeys per (user, device), and their claims."""

    document_type = PrekeyBundle

    async def set_signed_prekey(
        self,
        user_id: PydanticObjectId,
        device_id: str,
        *,
        key_id: int,
        public_key: Any,
        signature: Any,
    ) -> PrekeyBundle:
        """Publish (or rotate) the signed prekey of a device.

        Raises:
            DocumentValidationError: a key or signature of the wrong form, or private material.
        """
        probe = self._validate(
            {
                "user_id": user_id,
                "device_id": device_id,
                "signed_prekey": {
                    "key_id": key_id,
                    "public_key": public_key,
                    "signature": signature,
                },
            }
        )
        assert probe.signed_prekey is not None
        return await self._upsert(
            _device_key(user_id, device_id),
            {"$set": {"signed_prekey": probe.signed_prekey.model_dump()}},
        )

    async def publish_one_time_prekeys(
        self,
        user_id: PydanticObjectId,
        device_id: str,
        prekeys: Sequence[Mapping[str, Any]],
    ) -> int:
        """Add a batch of one-time prekeys (`{"key_id": ..., "public_key": ...}` each).

        Returns how many unclaimed prekeys the device has afterwards.

        Raises:
            DocumentValidationError: an empty or too large batch, a repeated or already used
                key id, too many stored prekeys, or a key that is not a public key.
        """
        count = len(prekeys) if isinstance(prekeys, Sequence) else 0
        if not 1 <= count <= MAX_PREKEY_UPLOAD:
            raise DocumentValidationError(
                f"one_time_prekeys: upload between 1 and {MAX_PREKEY_UPLOAD} prekeys, got {count}",
                fields=("one_time_prekeys",),
                document_type=PrekeyBundle,
            )
        # Validated as given, so private material anywhere in the batch is refused; only
        # the id and the public key of each prekey are stored.
        probe = self._validate(
            {"user_id": user_id, "device_id": device_id, "one_time_prekeys": list(prekeys)}
        )
        uploaded = [
            OneTimePrekey(key_id=k.key_id, public_key=k.public_key).model_dump()
            for k in probe.one_time_prekeys
        ]
        ids = [k.key_id for k in probe.one_time_prekeys]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise self._bad_batch(f"key ids repeated in the batch: {repeated}")
        key = _device_key(user_id, device_id)
        collection = self.collection()
        # Forget prekeys claimed long ago, so the supply of a device stays bounded.
        cutoff = utcnow() - _PRUNE_CLAIMED_AFTER
        await collection.update_one(
            key, {"$pull": {"one_time_prekeys": {"claimed_at": {"$lt": cutoff}}}}
        )
        # One conditional write: no id already in use, and room for the whole batch
        # (element MAX - count must not exist).
        condition = {
            **key,
            "one_time_prekeys.key_id": {"$nin": ids},
            f"one_time_prekeys.{MAX_ONE_TIME_PREKEYS - count}": {"$exists": False},
        }
        push = {
            "$push": {"one_time_prekeys": {"$each": uploaded}},
            "$setOnInsert": {"schema_version": 1},
        }
        try:
            await collection.update_one(condition, push, upsert=True)
        except DuplicateError as exc:
            # The bundle exists but the condition failed (an upsert of a second bundle was
            # refused by the unique index): say which rule the batch broke.
            raise await self._explain_refused_batch(key, ids, count) from exc
        return await self.count_one_time_prekeys(user_id, device_id)

    def _bad_batch(self, message: str) -> DocumentValidationError:
        return DocumentValidationError(
            f"one_time_prekeys: {message}",
            fields=("one_time_prekeys",),
            document_type=PrekeyBundle,
        )

    async def _explain_refused_batch(
        self, key: Mapping[str, Any], ids: list[int], count: int
    ) -> RepositoryError:
        raw = await self.collection().find_one(dict(key))
        stored = [] if raw is None else self._load(raw).one_time_prekeys
        used = sorted(set(ids) & {k.key_id for k in stored})
        if used:
            return self._bad_batch(f"key ids already used on this device: {used}")
        if len(stored) + count > MAX_ONE_TIME_PREKEYS:
            return self._bad_batch(
                f"a device holds at most {MAX_ONE_TIME_PREKEYS} prekeys; it has {len(stored)}, "
                f"the batch adds {count}"
            )
        return RepositoryError(
            "the prekey upload raced another change of the bundle; upload again",
            document_type=PrekeyBundle,
        )

    async def claim(
        self,
        user_id: PydanticObjectId,
        device_id: str,
        *,
        actor: PydanticObjectId | None = None,
        low_supply_threshold: int = DEFAULT_LOW_SUPPLY_THRESHOLD,
    ) -> PrekeyClaim:
        """Hand out the device's bundle with one one-time prekey nobody got before.

        Raises:
            NotFoundError: the device has no identity key or no signed prekey (nothing is
                claimed then).
        """
        identity = await self.layer.repo(UserKeyRepository).get_by_device(user_id, device_id)
        key = _device_key(user_id, device_id)
        token = uuid.uuid4().hex
        now = utcnow()
        collection = self.collection()
        marked = await collection.update_one(
            {
                **key,
                "signed_prekey": {"$ne": None},
                "one_time_prekeys": {"$elemMatch": {"claimed_at": None}},
            },
            {
                "$set": {
                    "one_time_prekeys.$.claimed_at": now,
                    "one_time_prekeys.$.claimed_by": actor,
                    "one_time_prekeys.$.claim_token": token,
                    "last_claimed_at": now,
                }
            },
        )
        raw = await collection.find_one(key)
        bundle = None if raw is None else self._load(raw)
        if bundle is None or bundle.signed_prekey is None:
            raise NotFoundError(
                f"device {device_id!r} of user {user_id} has no signed prekey",
                document_type=PrekeyBundle,
            )
        mine = None
        if marked.modified_count:
            mine = next((k for k in bundle.one_time_prekeys if k.claim_token == token), None)
            if mine is None:  # pruned within the hour it is kept: cannot happen in practice
                raise RepositoryError(
                    "the claimed prekey vanished before it was read", document_type=PrekeyBundle
                )
        remaining = len(bundle.available)
        return PrekeyClaim(
            user_id=user_id,
            device_id=device_id,
            registration_id=identity.registration_id,
            identity_key=identity.identity_key,
            signed_prekey=bundle.signed_prekey,
            one_time_prekey=mine,
            remaining=remaining,
            low_supply=remaining < low_supply_threshold,
        )

    async def claim_all_devices(
        self,
        user_id: PydanticObjectId,
        *,
        actor: PydanticObjectId | None = None,
        low_supply_threshold: int = DEFAULT_LOW_SUPPLY_THRESHOLD,
    ) -> list[PrekeyClaim]:
        """Claim a bundle for every device of a user that published a signed prekey.

        Raises:
            NotFoundError: no device of the user can be reached.
        """
        claims = []
        for device in await self.layer.repo(UserKeyRepository).list_by_user(user_id):
            try:
                claims.append(
                    await self.claim(
                        user_id,
                        device.device_id,
                        actor=actor,
                        low_supply_threshold=low_supply_threshold,
                    )
                )
            except NotFoundError:
                continue  # a device that has not published prekeys yet
        if not claims:
            raise NotFoundError(
                f"user {user_id} has no device with published prekeys", document_type=PrekeyBundle
            )
        return claims

    async def count_one_time_prekeys(self, user_id: PydanticObjectId, device_id: str) -> int:
        """How many one-time prekeys of a device are still unclaimed (0 if none published)."""
        raw = await self.collection().find_one(
            _device_key(user_id, device_id), {"one_time_prekeys.claimed_at": 1}
        )
        if raw is None:
            return 0
        return sum(1 for k in raw.get("one_time_prekeys", []) if k.get("claimed_at") is None)
