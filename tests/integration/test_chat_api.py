"""The example chat service (examples/chat_api.py) over HTTP, in-process, on the session layer.

Every endpoint's happy path in the three isolation models, the error statuses, a request
without a tenant that never reaches a repository, and 200 concurrent requests of four
interleaved tenants that each see only their own data.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from caas_data import DataLayer, Tier, tenant_scope
from caas_data.fastapi import get_layer
from caas_data.saas import MessageRepository, ReactionRepository
from caas_data.testing import ServerHandle, drop_prefix_databases, new_prefix, new_tenant_id

TenantFactory = Callable[..., Awaitable[str]]
MISSING_ID = "0123456789abcdef01234567"


def _load_example() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "examples" / "chat_api.py"
    spec = importlib.util.spec_from_file_location("caas_example_chat_api", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


chat_api = _load_example()


@pytest.fixture
def app(caas_layer: DataLayer) -> FastAPI:
    app: FastAPI = chat_api.create_app(caas_layer)
    return app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat") as client:
        yield client


@dataclass
class ChatTenant:
    """A tenant seen from the API: its users and a direct conversation of alice and bob."""

    id: str
    users: dict[str, str] = field(default_factory=dict)  # name -> user id
    direct: str = ""

    def headers(self, user: str | None = None) -> dict[str, str]:
        headers = {"X-Tenant-ID": self.id}
        if user is not None:
            headers["X-User-ID"] = self.users[user]
        return headers


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


async def code(request: Awaitable[httpx.Response]) -> int:
    return (await request).status_code


def tenant_ids_in(body: Any) -> set[str]:
    """Every `tenant_id` value anywhere in a JSON body."""
    found: set[str] = set()
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "tenant_id":
                found.add(value)
            found |= tenant_ids_in(value)
    elif isinstance(body, list):
        for item in body:
            found |= tenant_ids_in(item)
    return found


async def set_up(
    http: httpx.AsyncClient, tenant_id: str, names: tuple[str, ...] = ("alice", "bob")
) -> ChatTenant:
    tenant = ChatTenant(tenant_id)
    for name in names:
        body = {"external_id": f"{name}-{tenant_id}", "display_name": name.title()}
        user = ok(await http.post("/users", json=body, headers=tenant.headers()), 201)
        assert user["tenant_id"] == tenant_id
        tenant.users[name] = user["id"]
    direct = {"kind": "direct", "with_user_id": tenant.users["bob"]}
    conversation = ok(
        await http.post("/conversations", json=direct, headers=tenant.headers("alice")), 201
    )
    tenant.direct = conversation["id"]
    return tenant


async def send(http: httpx.AsyncClient, tenant: ChatTenant, user: str, text: str) -> Any:
    url = f"/conversations/{tenant.direct}/messages"
    return ok(await http.post(url, json={"text": text}, headers=tenant.headers(user)), 201)


# -- every endpoint, in each isolation model ---------------------------------------------------


@pytest.mark.parametrize("tier", [Tier.FREE, Tier.PRO, Tier.ENTERPRISE])
async def test_chat_flow(http: httpx.AsyncClient, caas_tenant: TenantFactory, tier: Tier) -> None:
    tenant = await set_up(http, await caas_tenant(tier=tier), ("alice", "bob", "carol"))
    t = tenant.id
    alice, bob, carol = (tenant.headers(n) for n in ("alice", "bob", "carol"))

    users = ok(await http.get("/users", headers=tenant.headers()))
    assert users["tenant_id"] == t
    assert [u["display_name"] for u in users["items"]] == ["Alice", "Bob", "Carol"]

    # Direct: one per pair, whoever opens it.
    again = {"kind": "direct", "with_user_id": tenant.users["alice"]}
    same = ok(await http.post("/conversations", json=again, headers=bob), 201)
    assert same["id"] == tenant.direct and same["kind"] == "direct" and same["tenant_id"] == t

    # Group: the caller is a member, backed by a groups row.
    body = {"kind": "group", "title": "Launch", "participant_ids": [tenant.users["bob"]]}
    group = ok(await http.post("/conversations", json=body, headers=alice), 201)
    assert group["kind"] == "group" and group["title"] == "Launch" and group["group_id"]
    assert sorted(group["participant_ids"]) == sorted([tenant.users["alice"], tenant.users["bob"]])
    assert group["tenant_id"] == t

    # Send: gap-free seqs per conversation; a reply; a retried send returns the first one.
    sent = [await send(http, tenant, "alice" if n % 2 else "bob", f"{t} #{n}") for n in range(1, 6)]
    assert [m["seq"] for m in sent] == [1, 2, 3, 4, 5]
    assert {m["tenant_id"] for m in sent} == {t}
    url = f"/conversations/{tenant.direct}/messages"
    reply = {"text": "re", "reply_to_id": sent[0]["id"], "client_message_id": "c-1"}
    replied = ok(await http.post(url, json=reply, headers=bob), 201)
    assert replied["seq"] == 6 and replied["reply_to_id"] == sent[0]["id"]
    retried = ok(await http.post(url, json=reply, headers=bob), 201)
    assert retried["id"] == replied["id"] and retried["seq"] == 6
    group_message = ok(
        await http.post(f"/conversations/{group['id']}/messages", json={"text": "hi"}, headers=bob),
        201,
    )
    assert group_message["seq"] == 1

    # History: newest page, then older (after=cursor), then newer (newer_than=seq).
    newest = ok(await http.get(url, params={"limit": 4}, headers=alice))
    assert newest["tenant_id"] == t and newest["conversation_id"] == tenant.direct
    assert [m["seq"] for m in newest["items"]] == [3, 4, 5, 6] and newest["has_more"]
    older = ok(await http.get(url, params={"after": newest["next_cursor"]}, headers=alice))
    assert [m["text"] for m in older["items"]] == [f"{t} #1", f"{t} #2"]
    assert not older["has_more"]
    newer = ok(await http.get(url, params={"newer_than": 4, "limit": 1}, headers=alice))
    assert [m["seq"] for m in newer["items"]] == [5] and newer["has_more"]
    assert tenant_ids_in(newest) == {t}

    # Reactions toggle on and off; the history shows them, with the viewer's own marked.
    react = f"/messages/{sent[0]['id']}/reactions"
    on = ok(await http.post(react, json={"emoji": "🚀"}, headers=bob))
    assert on["present"] and on["tenant_id"] == t
    assert on["reactions"] == [{"emoji": "🚀", "count": 1, "reacted": True}]
    ok(await http.post(react, json={"emoji": "🚀"}, headers=alice))
    ok(await http.post(react, json={"emoji": "👍"}, headers=alice))
    off = ok(await http.post(react, json={"emoji": "👍"}, headers=alice))
    assert not off["present"]
    assert off["reactions"] == [{"emoji": "🚀", "count": 2, "reacted": True}]
    first = ok(await http.get(url, params={"newer_than": 0, "limit": 1}, headers=bob))
    first = first["items"][0]
    assert first["reactions"] == [{"emoji": "🚀", "count": 2, "reacted": True}]

    # Inbox: latest activity first, unread counts, last-message previews; mark read.
    inbox = ok(await http.get("/conversations", headers=alice))
    assert inbox["tenant_id"] == t and inbox["user_id"] == tenant.users["alice"]
    items = {i["conversation"]["id"]: i for i in inbox["items"]}
    assert [i["conversation"]["id"] for i in inbox["items"]] == [group["id"], tenant.direct]
    assert items[tenant.direct]["unread_count"] == 1  # sending #5 read up to it; bob sent #6
    assert items[group["id"]]["unread_count"] == 1
    preview = items[tenant.direct]["conversation"]["last_message"]
    assert preview["text"] == "re" and preview["seq"] == 6
    assert preview["sender_id"] == tenant.users["bob"]
    receipt = ok(
        await http.post(f"/conversations/{tenant.direct}/read", json={"seq": 6}, headers=alice)
    )
    assert receipt == receipt | {"tenant_id": t, "last_read_seq": 6}
    clamped = ok(
        await http.post(f"/conversations/{group['id']}/read", json={"seq": 99}, headers=alice)
    )
    assert clamped["last_read_seq"] == 1  # clamped to the newest message
    inbox = ok(await http.get("/conversations", headers=alice))
    assert [i["unread_count"] for i in inbox["items"]] == [0, 0]
    assert ok(await http.get("/conversations", headers=carol))["items"] == []
    paged = ok(await http.get("/conversations", params={"limit": 1}, headers=alice))
    rest = ok(
        await http.get("/conversations", params={"after": paged["next_cursor"]}, headers=alice)
    )
    assert [i["conversation"]["id"] for i in paged["items"] + rest["items"]] == [
        group["id"],
        tenant.direct,
    ]


async def test_the_app_connects_itself_from_a_uri(caas_server: ServerHandle) -> None:
    app: FastAPI = chat_api.create_app(caas_server.uri, database_prefix=new_prefix())
    async with app.router.lifespan_context(app):
        layer = get_layer(SimpleNamespace(app=app))  # type: ignore[arg-type]
        try:
            tenant = new_tenant_id("uri")
            await layer.tenants.provision(tenant, tier=Tier.ENTERPRISE)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://chat") as http:
                tenant_data = await set_up(http, tenant)
                assert (await send(http, tenant_data, "bob", "hi"))["tenant_id"] == tenant
        finally:
            await drop_prefix_databases(layer)
    assert layer.closed


# -- errors -------------------------------------------------------------------------------------


async def test_errors_map_to_statuses(http: httpx.AsyncClient, caas_tenant: TenantFactory) -> None:
    tenant = await set_up(http, await caas_tenant(tier=Tier.FREE), ("alice", "bob", "carol"))
    other = await set_up(http, await caas_tenant(tier=Tier.PRO))
    alice, carol = tenant.headers("alice"), tenant.headers("carol")
    message = await send(http, tenant, "alice", "hello")
    url = f"/conversations/{tenant.direct}/messages"

    # 404: unknown conversation / message, and another tenant's ids are unknown here.
    for conversation in (MISSING_ID, other.direct):
        assert await code(http.get(f"/conversations/{conversation}/messages", headers=alice)) == 404
        sent = await http.post(
            f"/conversations/{conversation}/messages", json={"text": "x"}, headers=alice
        )
        # Named, the same way whether the id is nowhere or another tenant's.
        assert sent.status_code == 404
        assert sent.json() == {"detail": f"Conversation {conversation} not found"}
        read = http.post(f"/conversations/{conversation}/read", json={"seq": 1}, headers=alice)
        assert await code(read) == 404
    react = http.post(f"/messages/{MISSING_ID}/reactions", json={"emoji": "👍"}, headers=alice)
    assert await code(react) == 404
    # An unknown participant: the 404 names the id.
    unknown_user = {"kind": "direct", "with_user_id": other.users["bob"]}
    direct = await http.post("/conversations", json=unknown_user, headers=alice)
    assert direct.status_code == 404 and other.users["bob"] in direct.json()["detail"]
    group = {"kind": "group", "title": "G", "participant_ids": [MISSING_ID]}
    grouped = await http.post("/conversations", json=group, headers=alice)
    assert grouped.status_code == 404 and MISSING_ID in grouped.json()["detail"]

    # 401 / 403: who is calling.
    inbox = "/conversations"
    assert await code(http.get(inbox)) == 401
    assert await code(http.get(inbox, headers={"X-User-ID": tenant.users["alice"]})) == 401
    assert await code(http.get(inbox, headers=tenant.headers())) == 401  # no user
    assert await code(http.get(inbox, headers=tenant.headers() | {"X-User-ID": "bo"})) == 401
    stranger = tenant.headers() | {"X-User-ID": other.users["alice"]}  # a user of another tenant
    assert await code(http.get(inbox, headers=stranger)) == 403
    unknown_tenant = {"X-Tenant-ID": new_tenant_id("gone"), "X-User-ID": tenant.users["alice"]}
    assert await code(http.get(inbox, headers=unknown_tenant)) == 403
    # carol is no participant of alice and bob's conversation
    assert await code(http.get(url, headers=carol)) == 403
    assert await code(http.post(url, json={"text": "hi"}, headers=carol)) == 403
    read = http.post(f"/conversations/{tenant.direct}/read", json={"seq": 1}, headers=carol)
    assert await code(read) == 403
    react = http.post(f"/messages/{message['id']}/reactions", json={"emoji": "👍"}, headers=carol)
    assert await code(react) == 403

    # 422: bad input, from FastAPI (shapes) or the layer (values, with the fields named).
    bad = await http.post(url, json={"text": ""}, headers=alice)
    assert bad.status_code == 422 and "needs text" in bad.json()["detail"]
    bad = await http.post("/conversations/not-an-id/messages", json={"text": "x"}, headers=alice)
    assert bad.status_code == 422 and bad.json()["fields"] == ["conversation_id"]
    await send(http, tenant, "alice", "again")
    newest = ok(await http.get(url, params={"limit": 1}, headers=alice))
    other_query = {"after": newest["next_cursor"], "newer_than": 0}  # its cursor, another query
    bad = await http.get(url, params=other_query, headers=alice)
    assert bad.status_code == 422 and bad.json()["fields"] == ["after"]
    assert await code(http.get(url, params={"limit": 0}, headers=alice)) == 422
    assert await code(http.get(url, params={"newer_than": "x"}, headers=alice)) == 422
    bad = await http.post(
        f"/messages/{message['id']}/reactions", json={"emoji": "a b"}, headers=alice
    )
    assert bad.status_code == 422 and bad.json()["fields"] == ["emoji"]
    bad = await http.post(f"/conversations/{tenant.direct}/read", json={"seq": -1}, headers=alice)
    assert bad.status_code == 422 and bad.json()["fields"] == ["seq"]
    self_chat = {"kind": "direct", "with_user_id": tenant.users["alice"]}
    assert await code(http.post("/conversations", json=self_chat, headers=alice)) == 422
    assert await code(http.post("/conversations", json={"kind": "x"}, headers=alice)) == 422
    no_id = {"display_name": "x"}
    assert await code(http.post("/users", json=no_id, headers=tenant.headers())) == 422
    empty = await http.post(
        "/users", json={"external_id": "", "display_name": "x"}, headers=tenant.headers()
    )
    assert empty.status_code == 422 and empty.json()["fields"] == ["external_id"]
    assert await code(http.get(inbox, params={"after": "garbage"}, headers=alice)) == 422
    # 409: a second user with the same external id.
    dup = {"external_id": "alice-" + tenant.id, "display_name": "Alice again"}
    assert (await http.post("/users", json=dup, headers=tenant.headers())).status_code == 409
    # Nothing above left a message behind (but the one sent for a second page).
    history = ok(await http.get(url, headers=alice))
    assert [m["text"] for m in history["items"]] == ["hello", "again"]


async def test_no_tenant_header_never_reaches_the_repositories(
    http: httpx.AsyncClient,
    caas_layer: DataLayer,
    caas_tenant: TenantFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = await set_up(http, await caas_tenant(tier=Tier.PRO))
    message = await send(http, tenant, "alice", "hello")
    calls: list[str] = []
    for name in ("repo", "collection"):
        original = getattr(caas_layer, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(caas_layer, name, spy)
    user = {"X-User-ID": tenant.users["alice"]}  # a user, but no tenant
    conversation = f"/conversations/{tenant.direct}"
    requests = [
        ("POST", "/users", {"external_id": "x", "display_name": "X"}),
        ("GET", "/users", None),
        ("POST", "/conversations", {"kind": "direct", "with_user_id": tenant.users["bob"]}),
        ("GET", "/conversations", None),
        ("POST", f"{conversation}/messages", {"text": "sneaky"}),
        ("GET", f"{conversation}/messages", None),
        ("POST", f"{conversation}/read", {"seq": 1}),
        ("POST", f"/messages/{message['id']}/reactions", {"emoji": "👍"}),
    ]
    for method, url, body in requests:
        response = await http.request(method, url, json=body, headers=user)
        assert response.status_code == 401, (method, url, response.text)
        assert response.json() == {"detail": "tenant credentials required"}
    assert calls == []
    ok(await http.get("/conversations", headers=tenant.headers("alice")))  # the spies work
    assert "repo" in calls
    monkeypatch.undo()
    history = ok(await http.get(f"{conversation}/messages", headers=tenant.headers("bob")))
    assert [m["text"] for m in history["items"]] == ["hello"]


# -- 200 concurrent requests of interleaved tenants ----------------------------------------------

SENDS = 14  # per tenant
EMOJIS = ["👍", "🚀", "🎉", "👀"]


async def test_concurrent_requests_of_interleaved_tenants_stay_apart(
    http: httpx.AsyncClient, caas_layer: DataLayer, caas_tenant: TenantFactory
) -> None:
    # Two tenants share collections (FREE), one has its own (PRO), one its database.
    tiers = [Tier.FREE, Tier.FREE, Tier.PRO, Tier.ENTERPRISE]
    tenants = [await set_up(http, await caas_tenant(tier=tier)) for tier in tiers]
    seeds = {t.id: await send(http, t, "alice", f"{t.id} seed") for t in tenants}

    plan: list[tuple[ChatTenant, str, int]] = []
    for tenant in tenants:
        # Sends of one conversation take turns (its seq counter), so fewer of them.
        plan += [(tenant, "send", n) for n in range(SENDS)]
        plan += [(tenant, "history", n) for n in range(12)]
        plan += [(tenant, "inbox", n) for n in range(10)]
        plan += [(tenant, "react", n) for n in range(2 * len(EMOJIS))]
        plan += [(tenant, "read", n) for n in range(6)]
    assert len(plan) == 200
    # and, interleaved with them, requests that name a user but no tenant
    plan += [(tenants[n % 4], "anonymous", n) for n in range(8)]
    random.Random(6).shuffle(plan)

    def request(tenant: ChatTenant, kind: str, n: int) -> Awaitable[httpx.Response]:
        user = ("alice", "bob")[n % 2]
        headers = tenant.headers(user)
        conversation = f"/conversations/{tenant.direct}"
        if kind == "send":
            body = {"text": f"{tenant.id} says {n}"}
            return http.post(f"{conversation}/messages", json=body, headers=headers)
        if kind == "history":
            params = [{}, {"newer_than": 0}, {"newer_than": 5}][n % 3]
            return http.get(f"{conversation}/messages", params=params, headers=headers)
        if kind == "inbox":
            return http.get("/conversations", headers=headers)
        if kind == "react":  # each (user, emoji) once: all end up present
            url = f"/messages/{seeds[tenant.id]['id']}/reactions"
            return http.post(url, json={"emoji": EMOJIS[n // 2]}, headers=headers)
        if kind == "anonymous":
            return http.get(f"{conversation}/messages", headers={"X-User-ID": tenant.users[user]})
        return http.post(f"{conversation}/read", json={"seq": n + 1}, headers=headers)

    responses = await asyncio.gather(*(request(*item) for item in plan))

    all_ids = {t.id for t in tenants}
    for (tenant, kind, _), response in zip(plan, responses, strict=True):
        text = response.text
        if kind == "anonymous":
            assert response.status_code == 401, text
            assert not any(t in text for t in all_ids), text
            continue
        assert 200 <= response.status_code < 300, (tenant.id, kind, text)
        for other in all_ids - {tenant.id}:
            # Message texts carry their tenant's id, so this also catches foreign messages.
            assert other not in text, (tenant.id, kind, text)
        assert tenant_ids_in(response.json()) == {tenant.id}, (kind, text)

    messages, reactions = caas_layer.repo(MessageRepository), caas_layer.repo(ReactionRepository)
    for tenant in tenants:
        async with tenant_scope(tenant.id):
            page = await messages.history(tenant.direct, limit=1000)
            summary = await reactions.summary(seeds[tenant.id]["id"])
        assert [m.seq for m in page] == list(range(1, SENDS + 2))  # gap-free, nothing foreign
        assert {m.tenant_id for m in page} == {tenant.id}
        expected = {f"{tenant.id} seed"} | {f"{tenant.id} says {n}" for n in range(SENDS)}
        assert {m.text for m in page} == expected
        assert sorted((r.emoji, r.count) for r in summary) == sorted((e, 2) for e in EMOJIS)
        # and the API agrees
        url = f"/conversations/{tenant.direct}/messages"
        body = ok(await http.get(url, params={"newer_than": 0}, headers=tenant.headers("bob")))
        assert [m["seq"] for m in body["items"]] == list(range(1, SENDS + 2))
        assert json.dumps(body).count(tenant.id) >= SENDS + 1
        assert not any(other in json.dumps(body) for other in all_ids - {tenant.id})
