"""Every failure reaches the caller as a `CaasDataError`: what BSON cannot encode, integers
beyond what the server stores and durations beyond the calendar are the caller's
`DocumentValidationError`, never a raw `InvalidDocument`, `OverflowError` or `DocumentTooLarge`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from beanie import PydanticObjectId
from bson.errors import InvalidDocument
from pydantic import BaseModel, ValidationError, model_validator
from pymongo.errors import DocumentTooLarge

from caas_data import (
    DataLayer,
    DocumentValidationError,
    NotFoundError,
    TenantContextMissing,
    tenant_scope,
)
from caas_data.analytics import EventRepository
from caas_data.billing import InvoiceRepository
from caas_data.driver_errors import translate_driver_errors
from caas_data.platform import ApiKeyRepository
from caas_data.repositories import INT64_MAX, check_int
from caas_data.saas import (
    ConversationRepository,
    CounterRepository,
    MediaFileRepository,
    MessageRepository,
    MessageSearchRepository,
    ReadReceiptRepository,
    TenantSettingsRepository,
    User,
    UserRepository,
    UserSessionRepository,
)
from caas_data.security import BlockedIpRepository
from caas_data.testing.factories import Factories

from .conftest import MODEL_TIERS, raw_collection

NOWHERE = PydanticObjectId("0123456789abcdef01234567")
BIG = "x" * (17 * 1024 * 1024)  # over the 16 MB a BSON document may hold


# -- the helper ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [10**30, INT64_MAX + 1, -1, True, False, 1.0, "1", None])
def test_check_int_refuses_what_the_server_cannot_store(value: object) -> None:
    with pytest.raises(DocumentValidationError) as caught:
        check_int("seq", value)
    assert caught.value.fields == ("seq",)
    assert isinstance(caught.value, ValueError)
    assert len(str(caught.value)) < 200  # a 30-digit or 5,000-digit int is not echoed


def test_check_int_accepts_the_bounds() -> None:
    assert check_int("seq", 0) == 0
    assert check_int("seq", INT64_MAX) == INT64_MAX
    assert check_int("limit", 5, minimum=1, maximum=5) == 5


def test_only_the_encoders_overflow_is_translated() -> None:
    # An OverflowError of the layer's own arithmetic is a bug, not the caller's input.
    with pytest.raises(OverflowError), translate_driver_errors():
        float(10**400)


# -- encoding errors, through the repositories ---------------------------------------------


@pytest.mark.parametrize("model", ["shared", "pro"])
async def test_unencodable_documents_are_validation_errors(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    cases: list[tuple[dict[str, Any], type[BaseException], str]] = [
        ({"bad\x00key": 1}, InvalidDocument, "NULL"),
        ({"n": 2**70}, OverflowError, "64 bits"),
        ({"c": complex(1, 2)}, InvalidDocument, "cannot encode"),
        ({"blob": BIG}, DocumentTooLarge, "16 MB"),
    ]
    async with tenant_scope(model_tenant):
        users = caas_layer.repo(UserRepository)
        kept = await users.create({"external_id": "kept", "display_name": "k"})
        for n, (metadata, cause, words) in enumerate(cases):
            new = {"external_id": f"u{n}", "display_name": "u", "metadata": metadata}
            with pytest.raises(DocumentValidationError, match=words) as caught:
                await users.create(new)
            assert isinstance(caught.value.__cause__, cause), (metadata.keys(), caught.value)
            assert caught.value.tenant_id == model_tenant
            with pytest.raises(DocumentValidationError, match=words):
                await users.update(kept, metadata=metadata)
            key, value = next(iter(metadata.items()))
            with pytest.raises(DocumentValidationError, match=words):
                await users.update_many({}, {"$set": {"metadata": {key: value}}})
        # Beanie's API on the layer's documents takes the same path (cursor iteration, as in
        # `User.find(...).to_list()`, is translated by the guard's cursor wrapping, not here).
        with pytest.raises(DocumentValidationError, match="64 bits"):
            await User(external_id="beanie", display_name="b", metadata={"n": 2**70}).insert()
        # In a filter, the same values are refused too (reads and counts).
        with pytest.raises(DocumentValidationError, match="64 bits"):
            await users.find({"metadata.n": 2**70})
        with pytest.raises(DocumentValidationError, match="64 bits"):
            await users.count({"metadata.n": 2**70})
        with pytest.raises(DocumentValidationError, match="NULL"):
            await users.exists({"metadata": {"a\x00": 1}})
        # A key that is no string is named, not an AttributeError.
        for bad in ({1: "x"}, {None: 1}):
            with pytest.raises(DocumentValidationError, match="field names are strings"):
                await users.find(bad)  # type: ignore[arg-type]
            with pytest.raises(DocumentValidationError, match="field names are strings"):
                await users.update_many({}, bad)  # type: ignore[arg-type]
        # Nothing was written; the stored user is untouched and still readable.
        assert await users.count() == 1
        assert (await users.get(kept.id)).version == 0
        # The largest int64 is a value like any other.
        assert await users.update_many({}, {"$set": {"metadata.n": INT64_MAX}}) == 1
        assert (await users.get(kept.id)).metadata == {"n": INT64_MAX}
    raw = raw_collection(caas_layer, model_tenant, MODEL_TIERS[model], "users")
    assert await raw.count_documents({"tenant_id": model_tenant}) == 1


async def test_a_message_over_16_mb_is_refused(
    caas_layer: DataLayer, caas_factories: Factories, shared_tenant: str
) -> None:
    async with tenant_scope(shared_tenant):
        chat = await caas_factories.direct_conversation()
        messages = caas_layer.repo(MessageRepository)
        sender = chat.participant_ids[0]
        with pytest.raises(DocumentValidationError) as caught:
            await messages.send(chat.id, sender, text=BIG)
        assert "text" in str(caught.value)
        assert (await messages.history(chat.id)).items == []


# -- integers with a 64-bit limit, and durations, checked before any I/O ---------------------

BAD_INTS = [10**30, INT64_MAX + 1, -1, True]
NOW = datetime(2026, 1, 1, tzinfo=UTC)

Call = Callable[[DataLayer, Any], Awaitable[Any]]
# name -> (field the error names, the call with the bad value): each outside any tenant
# scope, so a call that reached the database (or routing) would raise TenantContextMissing.
BOUNDED: dict[str, tuple[str, Call]] = {
    "history.newer_than": (
        "newer_than",
        lambda layer, v: layer.repo(MessageRepository).history(NOWHERE, newer_than=v),
    ),
    "history.after": (
        "after",
        lambda layer, v: layer.repo(MessageRepository).history(NOWHERE, after=v),
    ),
    "history.limit": (
        "limit",
        lambda layer, v: layer.repo(MessageRepository).history(NOWHERE, limit=v),
    ),
    "thread.after": (
        "after",
        lambda layer, v: layer.repo(MessageRepository).thread(NOWHERE, after=v),
    ),
    "purge_older_than.batch_size": (
        "batch_size",
        lambda layer, v: layer.repo(MessageRepository).purge_older_than(NOW, batch_size=v),
    ),
    "mark_read.seq": (
        "seq",
        lambda layer, v: layer.repo(ReadReceiptRepository).mark_read(NOWHERE, NOWHERE, v),
    ),
    "advance.seq": (
        "seq",
        lambda layer, v: layer.repo(ReadReceiptRepository).advance(NOWHERE, NOWHERE, v),
    ),
    "readers.seq": (
        "seq",
        lambda layer, v: layer.repo(ReadReceiptRepository).readers(NOWHERE, v),
    ),
    "update.version": (
        "version",
        lambda layer, v: layer.repo(UserRepository).update(
            User.model_construct(id=NOWHERE, tenant_id="nobody", version=v), display_name="x"
        ),
    ),
    "issue.expires_in": (
        "expires_in",
        lambda layer, v: layer.repo(ApiKeyRepository).issue("k", expires_in=v),
    ),
    "issue.lifetime": (
        "lifetime",
        lambda layer, v: layer.repo(UserSessionRepository).issue(NOWHERE, "t", lifetime=v),
    ),
    "block.duration": (
        "duration",
        lambda layer, v: layer.repo(BlockedIpRepository).block("10.0.0.0/8", duration=v),
    ),
    "find.limit": ("limit", lambda layer, v: layer.repo(UserRepository).find(limit=v)),
    "inbox.limit": (
        "limit",
        lambda layer, v: layer.repo(ConversationRepository).inbox(NOWHERE, limit=v),
    ),
    "search.limit": (
        "limit",
        lambda layer, v: layer.repo(MessageSearchRepository).search("hello", limit=v),
    ),
    "allocate.count": ("count", lambda layer, v: layer.repo(CounterRepository).allocate("k", v)),
    "update_section.expected_version": (
        "expected_version",
        lambda layer, v: layer.repo(TenantSettingsRepository).update_section(
            "limits", {"max_group_members": 10}, expected_version=v
        ),
    ),
    "get_by_number.number": (
        "number",
        lambda layer, v: layer.repo(InvoiceRepository).get_by_number(v),
    ),
    "register.max_bytes": (
        "max_bytes",
        lambda layer, v: layer.repo(MediaFileRepository).register(
            name="a.png",
            mime_type="image/png",
            size_bytes=1,
            sha256="0" * 64,
            storage_key="k",
            uploader_id=NOWHERE,
            max_bytes=v,
        ),
    ),
    "purge_older_than.limit": (
        "limit",
        lambda layer, v: layer.repo(EventRepository).purge_older_than(NOW, limit=v),
    ),
    "messages.purge_older_than.limit": (
        "limit",
        lambda layer, v: layer.repo(MessageRepository).purge_older_than(NOW, limit=v),
    ),
}


DURATIONS = ("issue.expires_in", "start.lifetime", "block.duration")
# Durations become an expiry, now + duration: past year 9999 that is a raw OverflowError.
BAD_DURATIONS = [
    timedelta.max,
    timedelta(days=3_000_000),
    timedelta(0),
    -timedelta(seconds=1),
    3600,
]


def _bad_inputs() -> list[Any]:
    cases = []
    for call in BOUNDED:
        values = BAD_DURATIONS if call in DURATIONS else BAD_INTS
        cases += [pytest.param(call, value, id=f"{call}-{value!r}") for value in values]
    return cases


@pytest.mark.parametrize(("call", "value"), _bad_inputs())
async def test_bounded_inputs_are_checked_before_io(
    caas_layer: DataLayer, call: str, value: Any
) -> None:
    field, run = BOUNDED[call]
    with pytest.raises(DocumentValidationError) as caught:
        await run(caas_layer, value)
    assert caught.value.fields == (field,)


async def test_the_largest_seq_is_an_ordinary_cursor(
    caas_layer: DataLayer, caas_factories: Factories, tenant: str
) -> None:
    async with tenant_scope(tenant):
        chat = await caas_factories.direct_conversation()
        await caas_factories.message(chat, text="hi")
        messages = caas_layer.repo(MessageRepository)
        assert [m.text for m in (await messages.history(chat.id, newer_than=0)).items] == ["hi"]
        assert (await messages.history(chat.id, newer_than=INT64_MAX)).items == []
        reader = chat.participant_ids[1]
        receipt = await caas_layer.repo(ReadReceiptRepository).mark_read(chat.id, reader, INT64_MAX)
        assert receipt.last_read_seq == 1  # clamped to the newest message


# -- messages that say what to do (issue 12.10) ------------------------------------------------


async def test_system_scope_reading_tenant_data_says_why_and_what_to_do(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    async with caas_layer.system_scope():
        with pytest.raises(TenantContextMissing) as caught:
            await caas_layer.repo(UserRepository).find()
        message = str(caught.value)
        assert "User is tenant data, which a system scope cannot read" in message
        assert "tenant_scope(tenant_id)" in message and "inside this system scope" in message
        # And the advice works: a tenant scope inside the system scope reads the tenant's data.
        async with tenant_scope(shared_tenant, layer=caas_layer):
            assert (await caas_layer.repo(UserRepository).find()).items == []
    with pytest.raises(TenantContextMissing, match="no scope is running"):
        await caas_layer.repo(UserRepository).find()


def test_a_model_validator_failure_names_the_whole_document() -> None:
    class Window(BaseModel):
        start: int
        end: int

        @model_validator(mode="after")
        def _ordered(self) -> Window:
            if self.end < self.start:
                raise ValueError("end before start")
            return self

    with pytest.raises(ValidationError) as raised:
        Window(start=2, end=1)
    error = DocumentValidationError.from_pydantic(raised.value)
    assert error.fields == ("__root__",)
    expected = "invalid Window: __root__ (Window as a whole): Value error, end before start"
    assert str(error) == expected


@pytest.mark.parametrize("model", ["shared", "pro"])
async def test_a_documents_model_validator_failure_names_root(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    async with tenant_scope(model_tenant, layer=caas_layer):
        f = Factories(caas_layer)
        ada, bo, cy = await f.user(), await f.user(), await f.user()
        with pytest.raises(DocumentValidationError) as caught:
            await caas_layer.repo(ConversationRepository).create(
                {"kind": "direct", "participant_ids": [ada.id, bo.id, cy.id]}
            )
    assert caught.value.fields == ("__root__",)
    assert "__root__ (Conversation as a whole)" in caught.value.message
    assert "exactly two participants" in caught.value.message


async def test_an_unknown_participant_is_named(caas_layer: DataLayer, shared_tenant: str) -> None:
    async with tenant_scope(shared_tenant, layer=caas_layer):
        ada = await Factories(caas_layer).user()
        conversations = caas_layer.repo(ConversationRepository)
        with pytest.raises(NotFoundError) as caught:
            await conversations.open_direct(ada.id, NOWHERE)
    assert str(NOWHERE) in caught.value.message
