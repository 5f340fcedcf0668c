"""The adversarial suite's world and its two assertions.

A session-wide world holds one attacker and one victim tenant in each isolation model,
seeded with users, a conversation, messages, an application and an API key (the victims'
values carry their tenant id as a marker). Every case runs an attack from an attacker's scope
through `attack()`, which asserts:

(a) `assert_harmless`: the attack raised a `CaasDataError`, or what it returned holds nothing
    of a victim (no victim tenant id or marker in any string, no victim document id, no count
    above the attacker's own rows);
(b) `assert_victims_unchanged`: a digest of every victim's physical data, read with the raw
    client (its placement, its directory entry, its platform/billing/analytics rows), is the
    same after the attack as before.

`attack_each()` runs several paths of one attack in one case (a digest after each write
path) and names every path that failed.

Attacks must not change the victims, so the world is built once per session (a case that
does change one is reported by (b), and later cases take their own "before" digest).
Write attacks aim at documents made for the case; attacks that would destroy a victim
(deprovision, directory rewrites) use fresh victims of their own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from bson import ObjectId, json_util
from pydantic import BaseModel

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.documents.base import Area
from caas_data.documents.registry import spec_of
from caas_data.errors import CaasDataError
from caas_data.saas import User
from caas_data.testing.factories import Factories
from caas_data.testing.helpers import new_tenant_id

MODELS = ("shared", "pro", "enterprise")
MODEL_TIERS = {"shared": Tier.FREE, "pro": Tier.PRO, "enterprise": Tier.ENTERPRISE}
STEMS = {"shared": "free", "pro": "pro", "enterprise": "ent"}


PROVISIONED_MODELS: dict[str, str] = {}
"""tenant id -> the isolation model it was provisioned in (by `seed_tenant`/`provision_in`)."""


async def provision_in(layer: DataLayer, model: str, stem: str) -> str:
    """Provision a fresh tenant in `model`; remembers where its data lives."""
    tenant_id = new_tenant_id(stem)
    PROVISIONED_MODELS[tenant_id] = model
    await layer.tenants.provision(tenant_id, tier=MODEL_TIERS[model])
    return tenant_id


def marker(tenant_id: str) -> str:
    """The value seeded into a tenant's documents: finding it elsewhere is a leak."""
    return f"mark-{tenant_id}"


@dataclass
class Seeded:
    """What one tenant was seeded with (ids of its documents, by kind)."""

    tenant_id: str
    model: str
    user_ids: list[ObjectId] = field(default_factory=list)
    conversation_id: ObjectId | None = None
    message_ids: list[ObjectId] = field(default_factory=list)
    application_id: ObjectId | None = None
    api_key_secret: str = ""


@dataclass
class World:
    """Attackers and victims of one layer, one of each per isolation model."""

    layer: DataLayer
    attackers: dict[str, Seeded]
    victims: dict[str, Seeded]

    @property
    def victim_ids(self) -> list[str]:
        return [v.tenant_id for v in self.victims.values()]

    @property
    def shared_victim(self) -> Seeded:
        return self.victims["shared"]


async def seed_tenant(layer: DataLayer, model: str, *, stem: str = "") -> Seeded:
    """Provision a tenant of `model` and give it a few documents of several kinds."""
    tenant_id = await provision_in(layer, model, stem or STEMS[model])
    seeded = Seeded(tenant_id, model)
    factories = Factories(layer)
    mark = marker(tenant_id)
    async with tenant_scope(tenant_id, layer=layer):
        alice = await factories.user(display_name=f"{mark} alice")
        bob = await factories.user(display_name=f"{mark} bob")
        # The same external id in every tenant: a graph walk on it crosses tenants
        # wherever the server ignores restrictSearchWithMatch.
        root = await factories.user(external_id="graph-root", display_name=f"{mark} root")
        seeded.user_ids = [alice.id, bob.id, root.id]  # type: ignore[list-item]
        chat = await factories.direct_conversation(alice, bob)
        seeded.conversation_id = chat.id
        for n in range(2):
            message = await factories.message(chat, text=f"{mark} secret {n}")
            seeded.message_ids.append(message.id)  # type: ignore[arg-type]
        application = await factories.application(description=mark)
        seeded.application_id = application.id
        issued = await factories.api_key(application=application)
        seeded.api_key_secret = issued.secret
    return seeded


async def build_world(
    layer: DataLayer,
    attacker_models: Iterable[str] = MODELS,
    victim_models: Iterable[str] = MODELS,
) -> World:
    """Seed attackers and victims; each model list names the isolation models wanted."""
    attackers = {m: await seed_tenant(layer, m, stem=f"atk{m[:3]}") for m in attacker_models}
    victims = {m: await seed_tenant(layer, m, stem=f"vic{m[:3]}") for m in victim_models}
    return World(layer, attackers, victims)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def world(caas_session_layer: DataLayer) -> World:
    """The session's attackers and victims (attacks must leave the victims as they were)."""
    return await build_world(caas_session_layer)


@pytest.fixture(params=MODELS)
def attacker(request: pytest.FixtureRequest, world: World) -> Seeded:
    """The attacking tenant, once per isolation model."""
    return world.attackers[request.param]


def raw_collection_of(layer: DataLayer, tenant_id: str, document_type: type[Any]) -> Any:
    """The raw collection holding `tenant_id`'s rows of `document_type` (no guard).

    Placement follows the schema (section 3), not the layer's resolver: a directory entry an
    attack rewrote must not move where the test looks.
    """
    spec = spec_of(document_type)
    if spec.area is not Area.TENANT:
        return layer.client[layer.database_name(spec.area)][spec.name]
    model = PROVISIONED_MODELS[tenant_id]
    if model == "enterprise":
        return layer.client[f"{layer.prefix}_{tenant_id}"][spec.name]
    if model == "pro":
        return layer.client[f"{layer.prefix}_shared"][f"{tenant_id}_{spec.name}"]
    return layer.client[f"{layer.prefix}_shared"][spec.name]


def raw_users(layer: DataLayer, tenant_id: str) -> Any:
    """The raw `users` collection of a tenant."""
    return raw_collection_of(layer, tenant_id, User)


# -- (b) the digest of every victim's physical data ------------------------------------------


def _tenant_collection_names(layer: DataLayer) -> list[str]:
    return [spec_of(d).name for d in layer.registry.in_area(Area.TENANT)]


def _area_collections(layer: DataLayer) -> dict[str, list[tuple[str, bool]]]:
    """Platform/billing/analytics database -> [(collection, tenant_keyed)]."""
    result: dict[str, list[tuple[str, bool]]] = {}
    for document_type in layer.registry.all():
        spec = spec_of(document_type)
        if spec.area is Area.TENANT:
            continue
        result.setdefault(layer.database_name(spec.area), []).append((spec.name, spec.tenant_keyed))
    return result


async def _read_all(
    layer: DataLayer, database: str, names: Iterable[str], query: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """Every document of `names` matching `query`, in one round trip ($unionWith chain)."""
    names = list(names)
    if not names:
        return []
    head, *rest = names
    pipeline: list[dict[str, Any]] = [{"$match": dict(query)}, {"$set": {"__coll": head}}]
    for name in rest:
        pipeline.append(
            {
                "$unionWith": {
                    "coll": name,
                    "pipeline": [{"$match": dict(query)}, {"$set": {"__coll": name}}],
                }
            }
        )
    rows = await (await layer.client[database][head].aggregate(pipeline)).to_list()
    return [(row.pop("__coll"), row) for row in rows]


_CANONICAL = json_util.CANONICAL_JSON_OPTIONS


@dataclass(frozen=True)
class Digest:
    """A hash of every victim document, and the victims' document ids."""

    value: str
    count: int
    ids: frozenset[Any]


async def victim_digest(layer: DataLayer, victims: Iterable[str]) -> Digest:
    """Digest, with the raw client, of every victim's physical data (see the module doc)."""
    victims = list(victims)
    docs: list[tuple[str, str, dict[str, Any]]] = []
    shared_db = f"{layer.prefix}_shared"
    shared_names = await layer.client[shared_db].list_collection_names()
    for tenant in victims:
        placement = await layer.tenants.placement(tenant)
        if placement.collection_prefix:  # pro: its collection set, whatever it holds now
            names = [n for n in shared_names if n.startswith(placement.collection_prefix)]
            query: dict[str, Any] = {}
        elif placement.database != shared_db:  # enterprise: its whole database
            names = await layer.client[placement.database].list_collection_names()
            query = {}
        else:  # shared: its rows of the shared collections
            names = [n for n in _tenant_collection_names(layer) if n in shared_names]
            query = {"tenant_id": tenant}
        for coll, row in await _read_all(layer, placement.database, names, query):
            docs.append((placement.database, coll, row))
    for database, collections in _area_collections(layer).items():
        keyed = [name for name, tenant_keyed in collections if tenant_keyed]
        for coll, row in await _read_all(layer, database, keyed, {"tenant_id": {"$in": victims}}):
            docs.append((database, coll, row))
    directory = layer.client[f"{layer.prefix}_platform"]["saas_clients"]
    async for row in directory.find({"tenant_id": {"$in": victims}}):
        docs.append((directory.database.name, "saas_clients", row))
    canonical = sorted(
        json.dumps(
            [db, coll, json.loads(json_util.dumps(row, json_options=_CANONICAL))], sort_keys=True
        )
        for db, coll, row in docs
    )
    value = hashlib.sha256("\n".join(canonical).encode()).hexdigest()
    return Digest(value, len(docs), frozenset(row["_id"] for _, _, row in docs))


def assert_victims_unchanged(before: Digest, after: Digest, what: str) -> None:
    """(b): nothing of another tenant changed."""
    assert after.value == before.value, (
        f"{what}: a victim's data changed ({before.count} -> {after.count} documents)"
    )


# -- (a) the result holds nothing of a victim ------------------------------------------------


@dataclass(frozen=True)
class OwnCount:
    """A count an attack obtained: it may not exceed the attacker's own rows of `collection`."""

    value: int
    document_type: type[Any]


def _leaks(value: Any, needles: tuple[str, ...], ids: frozenset[Any], path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if isinstance(value, str):
        found += [f"{path}: {value!r} names {n!r}" for n in needles if n in value]
    elif isinstance(value, ObjectId):
        if value in ids:
            found.append(f"{path}: victim document id {value}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found += _leaks(key, needles, ids, f"{path}.<key>")
            found += _leaks(item, needles, ids, f"{path}.{key}")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            found += _leaks(item, needles, ids, f"{path}[{i}]")
    return found


async def _own_rows(layer: DataLayer, attacker: str, document_type: type[Any]) -> int:
    spec = spec_of(document_type)
    if spec.area is Area.TENANT:
        placement = await layer.tenants.placement(attacker)
        raw = layer.client[placement.database][placement.collection_name(spec.name)]
    else:
        raw = layer.client[layer.database_name(spec.area)][spec.name]
    query = {"tenant_id": attacker} if spec.tenant_keyed else {"_id": None}
    return await raw.count_documents(query)


async def assert_harmless(
    world: World,
    attacker: str,
    result: Any,
    what: str,
    *,
    victims: Iterable[str] = (),
    ids: frozenset[Any] | None = None,
) -> None:
    """(a): the result names no victim, holds none of its ids, counts no victim row."""
    names = list(victims) or world.victim_ids
    needles = tuple(names) + tuple(marker(v) for v in names)
    if ids is None:
        ids = (await victim_digest(world.layer, names)).ids
    leaks = _leaks(result, needles, ids, "result")
    assert not leaks, f"{what}: victim data came back: {leaks[:3]}"
    for count in _counts(result):
        own = await _own_rows(world.layer, attacker, count.document_type)
        assert count.value <= own, f"{what}: counted {count.value} rows, the attacker has {own}"


def _counts(value: Any) -> list[OwnCount]:
    if isinstance(value, OwnCount):
        return [value]
    if isinstance(value, list | tuple):
        return [c for item in value for c in _counts(item)]
    return []


# -- the harness -------------------------------------------------------------------------------

Attack = Callable[[], Awaitable[Any]]


@dataclass
class Outcome:
    """What an attack did: the CaasDataError it raised, or what it returned."""

    error: BaseException | None
    result: Any = None


async def _attempt(
    world: World,
    attacker: str,
    run: Attack,
    what: str,
    *,
    scoped: bool,
    names: list[str],
    before: Digest,
    check_digest: bool = True,
) -> tuple[Outcome, Digest]:
    """Run one attack and assert (a), and (b) against the digest taken `before` it.

    With `check_digest=False` the caller checks (b) itself, after several attacks.
    """
    outcome = Outcome(None)
    try:
        if scoped:
            async with tenant_scope(attacker, layer=world.layer):
                outcome.result = await run()
        else:
            outcome.result = await run()
    except CaasDataError as exc:
        outcome.error = exc
    except Exception as exc:
        raise AssertionError(
            f"{what}: a raw {type(exc).__module__}.{type(exc).__name__} escaped: {exc!s:.300}"
        ) from exc
    after = before
    if check_digest:
        after = await victim_digest(world.layer, names)
        assert_victims_unchanged(before, after, what)
    if outcome.error is None:
        await assert_harmless(world, attacker, outcome.result, what, victims=names, ids=before.ids)
    return outcome, after


async def attack(
    world: World,
    attacker: str,
    run: Attack,
    what: str,
    *,
    scoped: bool = True,
    victims: Iterable[str] = (),
) -> Outcome:
    """Run `run` (inside the attacker's scope unless `scoped=False`) and assert (a) and (b).

    Raises AssertionError naming the leak, the change, or the raw error that escaped.
    """
    names = list(victims) or world.victim_ids
    before = await victim_digest(world.layer, names)
    outcome, _ = await _attempt(
        world, attacker, run, what, scoped=scoped, names=names, before=before
    )
    return outcome


async def attack_each(
    world: World,
    attacker: str,
    runs: Mapping[str, Attack],
    what: str,
    *,
    reads_only: bool = False,
    scoped: bool = True,
) -> dict[str, Outcome]:
    """`attack` for several paths of one attack, with a digest after each path.

    `reads_only` paths share one digest before and one after all of them (a change then
    names no path). Every path runs even when an earlier one failed; the AssertionError
    names them all.
    """
    names = world.victim_ids
    first = before = await victim_digest(world.layer, names)
    outcomes: dict[str, Outcome] = {}
    failures: list[str] = []
    for label, run in runs.items():
        try:
            outcomes[label], after = await _attempt(
                world,
                attacker,
                run,
                f"{label}({what})",
                scoped=scoped,
                names=names,
                before=before,
                check_digest=not reads_only,
            )
            before = before if reads_only else after
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0][:300])
            if not reads_only:
                before = await victim_digest(world.layer, names)
    if reads_only:
        last = await victim_digest(world.layer, names)
        if last.value != first.value:
            failures.append(f"{what}: a victim's data changed during the read paths")
    assert not failures, f"{len(failures)}/{len(runs)} paths failed:\n" + "\n".join(failures)
    return outcomes
