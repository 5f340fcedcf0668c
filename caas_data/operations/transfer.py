"""Export one tenant as canonical Extended JSON lines; import it into an empty placement.

The export holds every tenant collection (whatever the isolation model) and the tenant's rows
of the platform, billing and analytics collections, one `area.collection.jsonl` file each,
plus `manifest.json` (counts and SHA-256 of each file). Canonical Extended JSON keeps every
BSON type, so an import gives back equal documents, `_id`s included (references hold).

Left out on purpose: credentials (API keys, applications: secrets of the platform, reissued
after an import), the directory entry (the manifest names the tier) and the migration ledger.
Importing under a new tenant id also leaves out the audit trail: its hash chain covers the
tenant id, and rewriting it would forge it; the report names what was skipped.

Reads and writes go through the tenant guard in the tenant's scope; the fields the layer owns
(`__v`, timestamps, `deleted_*`, `schema_version`) are written as exported through
`_privileged()` collections, never by switching the guard off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bson import json_util

from caas_data.documents.analytics import AuditLog
from caas_data.documents.base import Area, BaseDocument, utcnow
from caas_data.documents.platform import ApiKey, Application, MigrationRecord
from caas_data.documents.registry import spec_of
from caas_data.driver_errors import translate_driver_errors
from caas_data.errors import OperationRefused
from caas_data.operations._common import (
    require_operator_scope,
    tenant_classes,
    tenant_owned_classes,
)
from caas_data.tenancy.ids import validate_tenant_id
from caas_data.tenancy.tiers import Placement, Tier

if TYPE_CHECKING:
    from caas_data.layer import DataLayer

__all__ = [
    "EXPORT_FORMAT",
    "ExportResult",
    "ImportResult",
    "export_tenant",
    "exported_classes",
    "import_tenant",
]

EXPORT_FORMAT = "caas-data-export/1"
_OPTIONS = json_util.CANONICAL_JSON_OPTIONS
_NOT_EXPORTED: frozenset[type[BaseDocument]] = frozenset({ApiKey, Application, MigrationRecord})
_BATCH = 500

Progress = Callable[[str, int], None]
"""Called as `(area.collection, rows)` after each batch written or read."""


@dataclass(slots=True)
class ExportResult:
    """Where the export went and what it holds (`area.collection` -> rows)."""

    directory: Path
    counts: dict[str, int]


@dataclass(slots=True)
class ImportResult:
    """What an import wrote (`area.collection` -> rows), and what it left out and why."""

    tenant_id: str
    tier: Tier
    counts: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)


def exported_classes(layer: DataLayer) -> list[type[BaseDocument]]:
    """Every class whose rows an export holds: tenant collections, then the tenant's rows."""
    classes = [*tenant_classes(layer), *tenant_owned_classes(layer)]
    return [c for c in classes if c not in _NOT_EXPORTED]


def _key(document_type: type[BaseDocument]) -> str:
    spec = spec_of(document_type)
    return f"{spec.area.value}.{spec.name}"


def _line(raw: dict[str, Any]) -> bytes:
    return (json_util.dumps(raw, json_options=_OPTIONS) + "\n").encode()


async def export_tenant(
    layer: DataLayer, tenant_id: str, directory: Path | str, *, on_progress: Progress | None = None
) -> ExportResult:
    """Write the tenant's data and `manifest.json` into `directory` (created, must be empty).

    Raises:
        TenantNotFound: the tenant is not live.
        OperationRefused: `directory` exists and is not empty.
        TenantMismatch: called inside a tenant scope.
    """
    validate_tenant_id(tenant_id)
    require_operator_scope("export", tenant_id)
    client = await layer.tenants.get(tenant_id)
    target = Path(directory)
    if target.exists() and any(target.iterdir()):
        raise OperationRefused(f"export directory {target} is not empty", tenant_id=tenant_id)
    target.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    async with layer.tenant_scope(tenant_id):
        for document_type in exported_classes(layer):
            key = _key(document_type)
            digest, count = hashlib.sha256(), 0
            collection = layer.collection(document_type, include_deleted=True)
            with (target / f"{key}.jsonl").open("wb") as out:
                async for raw in collection.find({}, sort=[("_id", 1)]):
                    line = _line(raw)
                    out.write(line)
                    digest.update(line)
                    count += 1
                    if on_progress is not None and count % _BATCH == 0:
                        on_progress(key, _BATCH)
            if on_progress is not None and count % _BATCH:
                on_progress(key, count % _BATCH)
            files[key] = {"file": f"{key}.jsonl", "count": count, "sha256": digest.hexdigest()}
    manifest = {
        "format": EXPORT_FORMAT,
        "tenant_id": tenant_id,
        "name": client.name,
        "tier": client.tier.value,
        "exported_at": utcnow().isoformat(),
        "collections": files,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return ExportResult(target, {k: v["count"] for k, v in files.items()})


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, after checking every file against its count and checksum."""
    path = directory / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OperationRefused(f"cannot read {path}: {exc}") from exc
    if manifest.get("format") != EXPORT_FORMAT or not isinstance(manifest.get("collections"), dict):
        raise OperationRefused(f"{path} is not a {EXPORT_FORMAT} manifest")
    for key, entry in manifest["collections"].items():
        data = directory / str(entry.get("file", ""))
        try:
            content = data.read_bytes()
        except OSError as exc:
            raise OperationRefused(f"cannot read {data}: {exc}") from exc
        count = content.count(b"\n")
        if hashlib.sha256(content).hexdigest() != entry.get("sha256") or count != entry.get(
            "count"
        ):
            raise OperationRefused(
                f"{data.name} does not match the manifest ({key}: {count} rows, checksum "
                "differs or count differs): refusing to import"
            )
    return manifest


async def import_tenant(
    layer: DataLayer,
    directory: Path | str,
    *,
    tenant_id: str | None = None,
    tier: Tier | str | None = None,
    on_progress: Progress | None = None,
) -> ImportResult:
    """Restore an export into an empty placement: same or new id, same or another tier.

    The manifest is checked against the files before anything is written, and the rows
    stored are counted against it afterwards. A tenant not yet provisioned is provisioned.

    Raises:
        OperationRefused: the files do not match the manifest, the export names a collection
            this layer does not know, or the tenant already holds data.
        TenantAlreadyProvisioned: the tenant exists with another tier.
        TenantIdRetained: the id still owns a former tenant's rows.
            Also when rows with the export's `_id`s exist where they would go (the source,
            or invoices an erasure kept, in the same cluster): import into another cluster.
    """
    require_operator_scope("import", tenant_id or "(from the manifest)")
    source = Path(directory)
    manifest = _read_manifest(source)
    target = tenant_id or str(manifest["tenant_id"])
    validate_tenant_id(target)
    require_operator_scope("import", target)
    chosen = Tier(tier or manifest["tier"])
    renamed = target != manifest["tenant_id"]
    classes = {_key(d): d for d in exported_classes(layer)}
    unknown = sorted(set(manifest["collections"]) - set(classes))
    if unknown:
        raise OperationRefused(
            f"the export holds collections this layer does not know: {', '.join(unknown)}",
            tenant_id=target,
        )
    placement = Placement.for_tier(target, chosen, database_prefix=layer.prefix)
    for key, entry in manifest["collections"].items():
        await _check_ids_free(layer, classes[key], placement, source / entry["file"], key)
    await layer.tenants.provision(target, tier=chosen, name=manifest.get("name"))
    result = ImportResult(target, chosen, {})
    async with layer.tenant_scope(target):
        for key, document_type in classes.items():
            collection = layer.collection(document_type, include_deleted=True)
            if await collection.count_documents({}):
                raise OperationRefused(
                    f"{key} of the tenant is not empty: import only into an empty placement",
                    tenant_id=target,
                )
        for key, entry in manifest["collections"].items():
            document_type = classes[key]
            if renamed and document_type is AuditLog:
                result.skipped[key] = (
                    "the audit chain's hashes cover the tenant id: kept only under the same id"
                )
                continue
            result.counts[key] = await _restore(
                layer, document_type, source / entry["file"], target, key, on_progress
            )
            expected = 0 if document_type is AuditLog and renamed else int(entry["count"])
            stored = await layer.collection(document_type, include_deleted=True).count_documents({})
            if stored != expected:
                raise OperationRefused(
                    f"{key}: {stored} rows stored, the manifest says {expected}",
                    tenant_id=target,
                )
    return result


async def _check_ids_free(
    layer: DataLayer,
    document_type: type[BaseDocument],
    placement: Placement,
    path: Path,
    key: str,
) -> None:
    """Refuse before writing when rows with the export's `_id`s exist where they would go.

    That happens importing beside the source in one cluster (the source, or the invoices an
    erasure kept): rows keep their `_id`s so that references between them hold.
    """
    spec = spec_of(document_type)
    if spec.area is Area.TENANT:
        database, name = placement.database, placement.collection_name(spec.name)
    else:
        database, name = layer.database_name(spec.area), spec.name
    collection = layer.unguarded_collection(
        database, name, why="an import checks, for any tenant, that its _ids are free"
    )
    with path.open("rb") as lines, translate_driver_errors(tenant_id=placement.tenant_id):
        ids = [json_util.loads(line, json_options=_OPTIONS)["_id"] for line in lines]
        for start in range(0, len(ids), _BATCH):
            taken = await collection.find_one({"_id": {"$in": ids[start : start + _BATCH]}})
            if taken is not None:
                raise OperationRefused(
                    f"{key}: rows with the export's _ids exist already at {database}.{name} "
                    "(the source, or invoices kept by an erasure, in this cluster): import "
                    "into another cluster",
                    tenant_id=placement.tenant_id,
                )


async def _restore(
    layer: DataLayer,
    document_type: type[BaseDocument],
    path: Path,
    tenant_id: str,
    key: str,
    on_progress: Progress | None,
) -> int:
    """Insert one file's rows as they were exported (the layer's own fields included)."""
    collection = layer.collection(document_type, include_deleted=True)._privileged()
    tenant_keyed = spec_of(document_type).tenant_keyed or spec_of(document_type).area is Area.TENANT
    written, batch = 0, []
    with path.open("rb") as lines, translate_driver_errors(tenant_id=tenant_id):
        for line in lines:
            raw = json_util.loads(line, json_options=_OPTIONS)
            if tenant_keyed:
                raw["tenant_id"] = tenant_id
            batch.append(raw)
            if len(batch) == _BATCH:
                written += await _insert(collection, batch, key, on_progress)
                batch = []
        if batch:
            written += await _insert(collection, batch, key, on_progress)
    return written


async def _insert(
    collection: Any, batch: list[dict[str, Any]], key: str, on_progress: Progress | None
) -> int:
    await collection.insert_many(batch, ordered=True)
    if on_progress is not None:
        on_progress(key, len(batch))
    return len(batch)
