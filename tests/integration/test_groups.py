"""Groups: roles, join/leave/kick rules, the last owner, counts, soft delete, placement."""

from __future__ import annotations

import pytest
from beanie import PydanticObjectId

from caas_data import DataLayer, DocumentValidationError, NotFoundError, tenant_scope
from caas_data.documents.saas.groups import Group, GroupRole, MembershipStatus
from caas_data.repositories.saas.groups import GroupMemberRepository, GroupRepository
from caas_data.repositories.saas.settings import TenantSettingsRepository

from .conftest import MODEL_TIERS as TIERS
from .conftest import Tenants, raw_collection

MODELS = ["shared", "pro", "enterprise"]


def ids(n: int) -> list[PydanticObjectId]:
    return [PydanticObjectId() for _ in range(n)]


async def assert_counts_match(layer: DataLayer, group: Group) -> Group:
    """The group's counters equal what its membership documents say."""
    fresh = await layer.repo(GroupRepository).get(group.id)
    members = layer.repo(GroupMemberRepository)
    active = await members.count({"group_id": group.id, "status": "active"})
    owners = await members.count({"group_id": group.id, "status": "active", "role": "owner"})
    assert (fresh.member_count, fresh.owner_count) == (active, owners)
    return fresh


@pytest.mark.parametrize("model", MODELS)
async def test_a_new_group_has_its_owner_and_first_members(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    owner, a, b = ids(3)
    async with tenant_scope(tenant):
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(
            name="Climbers", owner_id=owner, member_ids=[a, b, a, owner], visibility="public"
        )
        assert (group.member_count, group.owner_count, group.max_members) == (3, 1, 1024)
        members = caas_layer.repo(GroupMemberRepository)
        page = await members.list_by_group(group.id)
        roles = {m.user_id: m.role for m in page.items}
        assert roles == {owner: GroupRole.OWNER, a: GroupRole.MEMBER, b: GroupRole.MEMBER}
        assert [m.group_id for m in (await members.list_by_user(a)).items] == [group.id]
        await assert_counts_match(caas_layer, group)
    stored = raw_collection(caas_layer, tenant, TIERS[model], "group_members")
    assert await stored.count_documents({"tenant_id": tenant, "group_id": group.id}) == 3
    raw_group = await raw_collection(caas_layer, tenant, TIERS[model], "groups").find_one(
        {"tenant_id": tenant}
    )
    assert raw_group is not None and raw_group["member_count"] == 3


@pytest.mark.parametrize("model", MODELS)
async def test_join_is_idempotent_and_rejoin_reuses_the_membership(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    owner, user = ids(2)
    async with tenant_scope(model_tenant):
        groups = caas_layer.repo(GroupRepository)
        members = caas_layer.repo(GroupMemberRepository)
        group = await groups.create_with_members(name="g", owner_id=owner, visibility="public")
        joined = await groups.join(group.id, user)
        again = await groups.join(str(group.id), user)
        assert again.id == joined.id and again.version == joined.version
        assert (await assert_counts_match(caas_layer, group)).member_count == 2
        left = await groups.leave(group.id, user)
        assert left.status is MembershipStatus.LEFT and left.left_at is not None
        assert not await members.is_member(group.id, user)
        assert (await assert_counts_match(caas_layer, group)).member_count == 1
        with pytest.raises(NotFoundError, match="not a member"):
            await groups.leave(group.id, user)
        back = await groups.join(group.id, user)
        assert back.id == joined.id and back.is_active and back.left_at is None
        assert await members.count({"group_id": group.id}) == 2  # one document per user
        assert (await assert_counts_match(caas_layer, group)).member_count == 2


async def test_kick_rules(caas_layer: DataLayer, pro_tenant: str) -> None:
    owner, admin, alice, bob = ids(4)
    async with tenant_scope(pro_tenant):
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(
            name="g", owner_id=owner, member_ids=[admin, alice, bob], visibility="public"
        )
        await groups.set_role(group.id, admin, "admin", actor=owner)
        with pytest.raises(DocumentValidationError, match="only its owners and admins") as caught:
            await groups.kick(group.id, bob, actor=alice)
        assert caught.value.fields == ("actor",)
        with pytest.raises(DocumentValidationError, match="admins cannot remove an owner"):
            await groups.kick(group.id, owner, actor=admin)
        with pytest.raises(DocumentValidationError, match="use leave"):
            await groups.kick(group.id, admin, actor=admin)
        kicked = await groups.kick(group.id, bob, actor=admin)
        assert (kicked.status, kicked.removed_by) == (MembershipStatus.REMOVED, admin)
        with pytest.raises(NotFoundError):
            await groups.kick(group.id, bob, actor=admin)
        with pytest.raises(DocumentValidationError, match="was removed") as caught:
            await groups.join(group.id, bob)  # a public group, but bob was removed
        assert caught.value.fields == ("actor",)
        with pytest.raises(DocumentValidationError, match="only its owners and admins"):
            await groups.kick(group.id, alice, actor=bob)  # no longer a member
        readded = await groups.join(group.id, bob, actor=admin)
        assert readded.is_active and readded.removed_by is None and readded.added_by == admin
        await groups.kick(group.id, admin, actor=owner)
        assert (await assert_counts_match(caas_layer, group)).member_count == 3


async def test_private_groups_are_joined_by_being_added(
    caas_layer: DataLayer, enterprise_tenant: str
) -> None:
    owner, member, newcomer = ids(3)
    async with tenant_scope(enterprise_tenant):
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(name="secret", owner_id=owner, member_ids=[member])
        with pytest.raises(DocumentValidationError, match="private") as caught:
            await groups.join(group.id, newcomer)
        assert caught.value.fields == ("actor",)
        with pytest.raises(DocumentValidationError, match="only owners and admins add"):
            await groups.join(group.id, newcomer, actor=member)
        with pytest.raises(DocumentValidationError, match="is not a member"):
            await groups.join(group.id, newcomer, actor=PydanticObjectId())
        added = await groups.join(group.id, newcomer, actor=owner)
        assert added.added_by == owner
        assert (await assert_counts_match(caas_layer, group)).member_count == 3


@pytest.mark.parametrize("model", MODELS)
async def test_the_last_owner_stays_until_ownership_is_transferred(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    owner, heir = ids(2)
    async with tenant_scope(model_tenant):
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(name="g", owner_id=owner, member_ids=[heir])
        with pytest.raises(DocumentValidationError, match="last owner") as caught:
            await groups.leave(group.id, owner)
        assert caught.value.fields == ("user_id",)
        with pytest.raises(DocumentValidationError, match="last owner"):
            await groups.set_role(group.id, owner, GroupRole.ADMIN, actor=owner)
        with pytest.raises(DocumentValidationError, match="another member"):
            await groups.transfer_ownership(group.id, from_user_id=owner, to_user_id=owner)
        with pytest.raises(DocumentValidationError, match="not an owner") as caught:
            await groups.transfer_ownership(group.id, from_user_id=heir, to_user_id=owner)
        assert caught.value.fields == ("from_user_id",)
        with pytest.raises(NotFoundError):
            await groups.transfer_ownership(
                group.id, from_user_id=owner, to_user_id=PydanticObjectId()
            )
        new_owner, previous = await groups.transfer_ownership(
            group.id, from_user_id=owner, to_user_id=heir
        )
        assert (new_owner.role, previous.role) == (GroupRole.OWNER, GroupRole.ADMIN)
        assert (await assert_counts_match(caas_layer, group)).owner_count == 1
        await groups.leave(group.id, owner)
        fresh = await assert_counts_match(caas_layer, group)
        assert (fresh.member_count, fresh.owner_count) == (1, 1)


async def test_roles_owners_grant_ownership_admins_manage_members(
    caas_layer: DataLayer, shared_tenant: str
) -> None:
    owner, admin, alice = ids(3)
    async with tenant_scope(shared_tenant):
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(
            name="g", owner_id=owner, member_ids=[admin, alice]
        )
        await groups.set_role(group.id, admin, GroupRole.ADMIN, actor=owner)
        with pytest.raises(DocumentValidationError, match="only owners grant"):
            await groups.set_role(group.id, alice, GroupRole.OWNER, actor=admin)
        with pytest.raises(DocumentValidationError, match="only its owners and admins"):
            await groups.set_role(group.id, admin, GroupRole.MEMBER, actor=alice)
        with pytest.raises(DocumentValidationError) as caught:
            await groups.set_role(group.id, alice, "superuser", actor=owner)
        assert caught.value.fields == ("role",)
        promoted = await groups.set_role(group.id, alice, GroupRole.ADMIN, actor=admin)
        assert promoted.role is GroupRole.ADMIN
        unchanged = await groups.set_role(group.id, alice, GroupRole.ADMIN, actor=admin)
        assert unchanged.version == promoted.version
        co_owner = await groups.set_role(group.id, alice, GroupRole.OWNER, actor=owner)
        assert co_owner.role is GroupRole.OWNER
        assert (await assert_counts_match(caas_layer, group)).owner_count == 2
        await groups.leave(group.id, owner)  # another owner remains
        with pytest.raises(DocumentValidationError, match="admins cannot remove an owner"):
            await groups.kick(group.id, alice, actor=admin)
        fresh = await assert_counts_match(caas_layer, group)
        assert (fresh.member_count, fresh.owner_count) == (2, 1)


async def test_member_limits_come_from_the_group_and_the_tenant(
    caas_layer: DataLayer, pro_tenant: str
) -> None:
    owner, a, b = ids(3)
    async with tenant_scope(pro_tenant):
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(
            name="small", owner_id=owner, visibility="public", max_members=2
        )
        await groups.join(group.id, a)
        with pytest.raises(DocumentValidationError, match="full") as caught:
            await groups.join(group.id, b)
        assert caught.value.fields == ("max_members",)
        assert (await assert_counts_match(caas_layer, group)).member_count == 2
        await caas_layer.repo(TenantSettingsRepository).update_section(
            "limits", {"max_group_members": 5}
        )
        with pytest.raises(DocumentValidationError, match="tenant's limit of 5") as caught:
            await groups.create_with_members(name="big", owner_id=owner, max_members=6)
        assert caught.value.fields == ("max_members",)
        with pytest.raises(DocumentValidationError, match="exceed max_members") as caught:
            await groups.create_with_members(name="big", owner_id=owner, member_ids=ids(5))
        assert caught.value.fields == ("member_ids",)
        assert (await groups.create_with_members(name="ok", owner_id=owner)).max_members == 5
        with pytest.raises(DocumentValidationError) as caught:
            await groups.create_with_members(name="", owner_id=owner)
        assert caught.value.fields == ("name",)


@pytest.mark.parametrize("model", MODELS)
async def test_deleted_groups_can_be_restored_by_their_owner(
    caas_layer: DataLayer, model_tenant: str, model: str
) -> None:
    tenant = model_tenant
    owner, member = ids(2)
    async with tenant_scope(tenant):
        groups = caas_layer.repo(GroupRepository)
        group = await groups.create_with_members(
            name="g", owner_id=owner, member_ids=[member], visibility="public"
        )
        with pytest.raises(DocumentValidationError, match="only an owner may delete"):
            await groups.soft_delete(group.id, actor=member)
        deleted = await groups.soft_delete(group.id, actor=owner)
        assert deleted.deleted_by == owner
        assert await groups.get_or_none(group.id) is None
        with pytest.raises(NotFoundError):
            await groups.join(group.id, PydanticObjectId())
        raw = await raw_collection(caas_layer, tenant, TIERS[model], "groups").find_one(
            {"tenant_id": tenant}
        )
        assert raw is not None and raw["deleted_at"] is not None
        restored = await groups.restore(group.id)
        assert (restored.member_count, restored.deleted_at) == (2, None)
        await groups.join(group.id, PydanticObjectId())
        await assert_counts_match(caas_layer, group)
        await groups.purge(group.id)
        assert await caas_layer.repo(GroupMemberRepository).count({"group_id": group.id}) == 0


async def test_groups_and_memberships_stay_within_their_tenant(
    caas_layer: DataLayer, tenants: Tenants
) -> None:
    owner = PydanticObjectId()
    async with tenant_scope(tenants.shared):
        group = await caas_layer.repo(GroupRepository).create_with_members(
            name="mine", owner_id=owner, visibility="public"
        )
    async with tenant_scope(tenants.pro):
        groups = caas_layer.repo(GroupRepository)
        with pytest.raises(NotFoundError):
            await groups.join(group.id, PydanticObjectId())
        assert await caas_layer.repo(GroupMemberRepository).count() == 0
    async with tenant_scope(tenants.shared):
        assert (await assert_counts_match(caas_layer, group)).member_count == 1


async def test_bad_group_ids_are_named(caas_layer: DataLayer, shared_tenant: str) -> None:
    async with tenant_scope(shared_tenant):
        with pytest.raises(DocumentValidationError) as caught:
            await caas_layer.repo(GroupRepository).join("not-an-id", PydanticObjectId())
        assert caught.value.fields == ("group_id",)
