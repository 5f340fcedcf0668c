"""`import caas_data` works without the optional extras; using one names the extra to install.

The check runs in a fresh interpreter where a `sys.meta_path` finder makes the optional
packages unimportable, as on a machine that installed only `caas-data` or `caas-data[embedded]`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from caas_data.errors import (
    ConfigurationError,
    MissingDependencyError,
    optional_dependency,
)

ROOT = Path(__file__).resolve().parents[2]

# Runs in the child: block the optional packages, import the library, try the features.
CHILD = r"""
import importlib.abc, json, sys

BLOCKED = {"argon2", "fastapi", "starlette", "testcontainers", "pytest_asyncio", "hypothesis",
           "httpx", "uvicorn", "pymongocrypt", "typer", "rich"}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Blocker())

import caas_data
import caas_data.testing
from caas_data.tenancy.field_encryption import TenantKeyring
from caas_data.repositories.platform.directory import PlatformAdminRepository

result = {
    "file": caas_data.__file__,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
}
for feature, attempt in [
    ("hasher", lambda: PlatformAdminRepository.password_hasher),
    ("fastapi", lambda: __import__("caas_data.fastapi")),
    ("plugin", lambda: __import__("caas_data.testing.plugin")),
    ("encryption", lambda: TenantKeyring(None, None, None, ttl=1.0)),
    ("cli", lambda: __import__("caas_data.cli")),
]:
    try:
        attempt()
        result[feature] = None
    except caas_data.MissingDependencyError as exc:
        result[feature] = {
            "message": str(exc), "extra": exc.extra, "package": exc.package,
            "import_error": isinstance(exc, ImportError),
        }
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def without_extras() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_package_imports_without_any_optional_package(
    without_extras: dict[str, object],
) -> None:
    assert Path(str(without_extras["file"])).is_relative_to(ROOT / "caas_data")
    assert without_extras["loaded"] == []


@pytest.mark.parametrize(
    ("feature", "package", "extra"),
    [
        ("hasher", "argon2", "security"),
        ("fastapi", "fastapi", "fastapi"),
        ("plugin", "pytest_asyncio", "test"),
        ("encryption", "pymongocrypt", "encryption"),
        ("cli", "typer", "cli"),
    ],
)
def test_using_a_feature_without_its_extra_names_the_extra(
    without_extras: dict[str, object], feature: str, package: str, extra: str
) -> None:
    error = without_extras[feature]
    assert isinstance(error, dict)
    assert error["package"] == package
    assert error["extra"] == extra
    assert f"pip install 'caas-data[{extra}]'" in error["message"]
    assert error["import_error"] is True


def test_the_missing_dependency_error_is_in_the_tree() -> None:
    assert issubclass(MissingDependencyError, ConfigurationError)
    assert issubclass(MissingDependencyError, ImportError)


def test_a_missing_module_of_another_package_is_not_blamed_on_the_extra() -> None:
    # A typo or a bug in our own imports must stay a plain ModuleNotFoundError.
    with (
        pytest.raises(ModuleNotFoundError) as caught,
        optional_dependency("argon2", extra="security", feature="test"),
    ):
        import caas_data_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(caught.value, MissingDependencyError)
