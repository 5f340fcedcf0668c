"""tools/vocabulary_codemod.py on a small tree: renames keyed on the class, idempotent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "vocabulary_codemod.py"

REPOSITORIES = """
class Repository:
    async def soft_delete(self, document_or_id, *, deleted_by=None):
        return await self._set_deleted(document_or_id, deleted_by=deleted_by)

class _IpRuleRepository(Repository):
    async def remove(self, cidr, *, actor=None): ...

class BlockedIpRepository(_IpRuleRepository):
    pass

class UserRelationshipRepository(Repository):
    async def remove(self, user_id, other_user_id, kind): ...

class UserUnrelated:
    def remove(self, item): ...

class Plan:
    pass

class PlanRepository(Repository):
    async def active_plans(self): ...
"""

CALLER = """
from caas_data import Plan, Tier
from caas_data.repositories import BlockedIpRepository, UserRelationshipRepository


async def main(layer, user, something, other_repo):
    blocks = layer.repo(BlockedIpRepository)
    await blocks.remove("10.0.0.0/8")
    await layer.repo(UserRelationshipRepository).remove(user, user, "blocked")
    await layer.repo(PlanRepository).active_plans()
    await something.active_plans()
    await other_repo.remove(1)
    await layer.repo(UserRelationshipRepository).soft_delete(user, deleted_by=user)
    seen = set()
    seen.remove(1)
    return Tier, Plan
"""


@pytest.fixture
def tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("vocabulary_codemod_under_test", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    package = tmp_path / "caas_data"
    (package / "repositories").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from caas_data.repositories import Plan, Tier\n\n__all__ = [\n"
        '    "Plan",\n    "Tier",\n]\n'
    )
    (package / "repositories" / "__init__.py").write_text("")
    (package / "repositories" / "base.py").write_text(REPOSITORIES + "\nclass Tier:\n    pass\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_caller.py").write_text(CALLER)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "AREAS", {"billing": ("The billing area.", ["Plan"])})
    monkeypatch.setattr(module, "AREA_OF", {"Plan": "billing"})
    monkeypatch.setattr(module, "AREA_PACKAGES", {"caas_data.billing"})
    monkeypatch.setattr(module, "MOVED", {"Plan": "caas_data.billing"})
    monkeypatch.setattr(module, "OUT_OF_TOP_LEVEL", ())
    monkeypatch.setattr(sys, "argv", ["vocabulary_codemod.py", "--no-ruff"])
    return module


def test_renames_follow_the_class_and_a_second_run_changes_nothing(
    tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool.main()
    base = (tmp_path / "caas_data" / "repositories" / "base.py").read_text()
    caller = (tmp_path / "tests" / "test_caller.py").read_text()
    report = capsys.readouterr().out

    # definitions: each class's own new name; an unrelated class keeps its method
    assert "async def delete_by_cidr(self, cidr" in base
    assert "async def delete_by_users(self, user_id" in base
    assert "    def remove(self, item)" in base
    assert "async def list_active(self)" in base
    # a keyword renamed in the definition and its uses
    assert "async def soft_delete(self, document_or_id, *, actor=None)" in base
    assert "deleted_by=actor)" in base
    # call sites: resolved receivers, a unique name, the common name left and listed
    assert 'await blocks.delete_by_cidr("10.0.0.0/8")' in caller
    assert ".repo(UserRelationshipRepository).delete_by_users(user, user" in caller
    assert "await something.active_plans()" not in caller
    assert "await something.list_active()" in caller
    assert "await other_repo.remove(1)" in caller and "seen.remove(1)" in caller
    assert "test_caller.py:12: `.remove` on an unresolved receiver `other_repo`" in report
    assert ".soft_delete(user, actor=user)" in caller
    # the face: the moved name comes from its area package, which is written
    assert "from caas_data import Tier\nfrom caas_data.billing import Plan\n" in caller
    area = (tmp_path / "caas_data" / "billing" / "__init__.py").read_text()
    assert "from caas_data.repositories.base import Plan" in area
    assert '__all__ = [\n    "Plan",\n]' in area
    top = (tmp_path / "caas_data" / "__init__.py").read_text()
    assert top == 'from caas_data.repositories import Tier\n\n__all__ = [\n    "Tier",\n]\n'

    before = {p: p.read_text() for p in tmp_path.rglob("*.py")}
    tool.main()
    assert "changed:" not in capsys.readouterr().out
    assert {p: p.read_text() for p in tmp_path.rglob("*.py")} == before
