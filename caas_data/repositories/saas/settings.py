"""Tenant settings: read with defaults, change one section at a time, versioned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic

from caas_data.documents.base import BaseDocument
from caas_data.documents.saas.settings import (
    FeatureSettings,
    LimitSettings,
    RetentionSettings,
    SettingsSection,
    TenantSettings,
)
from caas_data.errors import DocumentValidationError, DuplicateError, VersionConflict
from caas_data.repositories.base import Repository, check_int

__all__ = ["TenantSettingsRepository"]

D = TypeVar("D", bound=BaseDocument)


_SECTION_TYPES: dict[SettingsSection, type[pydantic.BaseModel]] = {
    SettingsSection.RETENTION: RetentionSettings,
    SettingsSection.LIMITS: LimitSettings,
    SettingsSection.FEATURES: FeatureSettings,
}


class TenantSettingsRepository(Repository[TenantSettings]):
    """The scope's tenant settings document."""

    document_type = TenantSettings

    async def get_settings(self) -> TenantSettings:
        """The stored settings, or the defaults (not written) when none were ever saved.

        Defaults come back with `version` 0 and no `id`.
        """
        raw = await self.collection().find_one({})
        return TenantSettings() if raw is None else self._load(raw)

    async def update_section(
        self,
        section: SettingsSection | str,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> TenantSettings:
        """Change some settings of one section; the others keep their values.

        Only the named settings are written (`$set` on `section.name`), so two admins changing
        different settings at once both succeed. Pass `expected_version` (the `version` you
        read; 0 for never-saved settings) to refuse the change if anyone saved in between.

        Raises:
            DocumentValidationError: unknown section or setting, or a value out of range;
                `fields` names them as `"limits.max_group_members"`.
            VersionConflict: `expected_version` is not the stored version.
        """
        name = self._section(section)
        if expected_version is not None:
            check_int("expected_version", expected_version, document_type=TenantSettings)
        if not isinstance(changes, Mapping) or not changes:
            raise DocumentValidationError(
                f"no changes given for section {name!r}",
                fields=(name,),
                document_type=TenantSettings,
            )
        current = await self.get_settings()
        values = self._validated(name, getattr(current, name), changes)
        update = {"$set": {f"{name}.{key}": values[key] for key in changes}}
        if expected_version is None:
            return await self._upsert({}, update)
        if current.id is None and expected_version != 0:
            raise await self._conflict(expected_version)
        try:
            # Matches the stored document at that version, or (version 0, nothing stored)
            # inserts it; any other case is an insert the unique index refuses.
            await self.collection().update_one(
                {"__v": expected_version},
                {**update, "$setOnInsert": {"schema_version": 1}},
                upsert=True,
            )
        except DuplicateError as exc:
            raise await self._conflict(expected_version) from exc
        return await self.get_settings()

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _section(section: SettingsSection | str) -> SettingsSection:
        try:
            return SettingsSection(section)
        except ValueError:
            known = ", ".join(s.value for s in SettingsSection)
            raise DocumentValidationError(
                f"unknown settings section {section!r} (known: {known})",
                fields=("section",),
                document_type=TenantSettings,
            ) from None

    @staticmethod
    def _validated(
        name: SettingsSection, current: pydantic.BaseModel, changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The section with `changes` applied, validated; errors name `section.setting`."""
        section_type = _SECTION_TYPES[name]
        merged = current.model_dump()
        for key in changes:
            if not isinstance(key, str) or key not in section_type.model_fields:
                known = ", ".join(section_type.model_fields)
                raise DocumentValidationError(
                    f"{name}.{key}: unknown setting (known: {known})",
                    fields=(f"{name}.{key}",),
                    document_type=TenantSettings,
                )
        merged.update(changes)
        try:
            return section_type.model_validate(merged).model_dump()
        except pydantic.ValidationError as exc:
            problems = exc.errors()
            fields = tuple(f"{name}." + ".".join(str(p) for p in e["loc"]) for e in problems)
            details = "; ".join(
                f"{field}: {e['msg']} (got {e['input']!r})"
                for field, e in zip(fields, problems, strict=True)
            )
            raise DocumentValidationError(
                details, fields=fields, validation_error=exc, document_type=TenantSettings
            ) from exc

    async def _conflict(self, expected_version: int) -> VersionConflict:
        stored = await self.collection().find_one({}, {"__v": 1})
        current = 0 if stored is None else int(stored.get("__v", 0))
        return VersionConflict(
            f"tenant settings were saved meanwhile (read version {expected_version}, "
            f"stored version {current}): read them again and re-apply the change",
            expected_version=expected_version,
            current_version=current,
            tenant_id=self.collection().rules.tenant_id,
            document_type=TenantSettings,
        )
