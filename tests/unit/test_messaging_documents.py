"""Messaging documents and search terms as pure values: no server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from beanie import PydanticObjectId
from pydantic import ValidationError

from caas_data.documents.saas.messaging import (
    Conversation,
    ConversationKind,
    Message,
    direct_key,
    preview_of,
)
from caas_data.repositories.saas.search import MAX_TERM_LENGTH, MAX_TERMS, search_terms

A, B = PydanticObjectId(), PydanticObjectId()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class TestSearchTerms:
    def test_lowercase_accents_and_punctuation(self) -> None:
        assert search_terms("Café au LAIT, café! Crème-brûlée") == [
            "cafe",
            "au",
            "lait",
            "creme",
            "brulee",
        ]

    def test_stop_words_and_single_characters_are_dropped(self) -> None:
        assert search_terms("The cat is on a mat, I think") == ["cat", "mat", "think"]

    def test_other_scripts_and_digits_are_words(self) -> None:
        terms = search_terms("Ünïcode ΣΊΣΥΦΟΣ 2026 straße")
        assert terms == ["unicode", "σισυφοσ", "2026", "strasse"]

    def test_nothing_searchable(self) -> None:
        assert search_terms(None) == [] and search_terms("") == []
        assert search_terms("... the a !!") == []

    def test_bounded(self) -> None:
        assert search_terms("x" * 500) == ["x" * MAX_TERM_LENGTH]
        many = " ".join(f"w{i}" for i in range(MAX_TERMS + 50))
        assert len(search_terms(many)) == MAX_TERMS


class TestConversation:
    def test_direct_key_ignores_order(self) -> None:
        assert direct_key(A, B) == direct_key(B, A)
        with pytest.raises(ValueError, match="two different users"):
            direct_key(A, A)

    def test_direct_needs_two_users_and_its_key(self) -> None:
        ok = Conversation(
            tenant_id="t", kind=ConversationKind.DIRECT, participant_ids=[A, B],
            direct_key=direct_key(A, B),
        )  # fmt: skip
        assert ok.last_seq == 0 and ok.last_message is None
        with pytest.raises(ValidationError, match="exactly two"):
            Conversation(tenant_id="t", kind="direct", participant_ids=[A], direct_key="x")
        with pytest.raises(ValidationError, match="direct_key"):
            Conversation(tenant_id="t", kind="direct", participant_ids=[A, B], direct_key="x")

    def test_group_needs_group_id_and_distinct_members(self) -> None:
        with pytest.raises(ValidationError, match="group_id"):
            Conversation(tenant_id="t", kind="group", participant_ids=[A, B])
        with pytest.raises(ValidationError, match="repeat"):
            Conversation(
                tenant_id="t", kind="group", participant_ids=[A, A], group_id=PydanticObjectId()
            )


class TestMessage:
    def message(self, **changes: object) -> Message:
        fields: dict[str, object] = {
            "tenant_id": "t",
            "id": PydanticObjectId(),
            "conversation_id": PydanticObjectId(),
            "seq": 3,
            "sender_id": A,
            "text": "hello",
            "created_at": NOW,
        }
        fields.update(changes)
        return Message(**fields)  # type: ignore[arg-type]

    def test_needs_content(self) -> None:
        with pytest.raises(ValidationError, match="text or at least one attachment"):
            self.message(text=None)
        attachment = {"file_id": PydanticObjectId(), "name": "a", "mime_type": "a/b", "size": 1}
        assert self.message(text=None, attachments=[attachment]).attachments[0].size == 1
        with pytest.raises(ValidationError, match="mime_type"):
            self.message(attachments=[{**attachment, "mime_type": "nope"}])

    def test_deleted_message_is_a_tombstone_for_everyone_but_its_sender(self) -> None:
        live = self.message()
        assert live.viewed_by(B) is live
        deleted = self.message(deleted_at=NOW, deleted_by=A, terms=["hello"])
        assert deleted.viewed_by(A).text == "hello"
        for viewer in (B, None):
            tomb = deleted.viewed_by(viewer)
            assert tomb.is_deleted and tomb.text is None and tomb.terms == []
            assert (tomb.seq, tomb.sender_id) == (3, A)
        assert deleted.text == "hello"  # the stored one is untouched

    def test_preview_is_short_and_hides_deleted_text(self) -> None:
        preview = preview_of(self.message(text="y" * 500))
        assert len(preview["text"]) == 140 and preview["text"].endswith("…")
        assert preview["seq"] == 3 and preview["sent_at"] == NOW and not preview["deleted"]
        gone = preview_of(self.message(deleted_at=NOW))
        assert gone["deleted"] and gone["text"] is None
