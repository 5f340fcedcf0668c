"""The layers of caas_data point one way (see README, "Architecture").

The contract is read from the source with `ast`: module-level imports, imports inside
functions and imports under `TYPE_CHECKING` all count, so a cycle cannot hide behind an
import placed late or typed away.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Face packages of the schema areas (`caas_data.billing`...): they re-export documents and
# repositories, so they sit with the face. Listed whether or not the tree has them yet.
AREA_FACES = ("analytics", "billing", "platform", "saas", "security")

# Lowest first: a module may import its own layer and the ones before it, never a later one.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("caas_data.errors", "caas_data.driver_errors", "caas_data.config", "caas_data.clock"),
    ("caas_data.engine",),  # sessions and write concern, clusters (transactions)
    ("caas_data.tenancy",),  # ids, tiers, the scope; the guard, its rules, field encryption
    ("caas_data.documents",),  # declarations, registry, routing, writes, indexes
    ("caas_data.repositories",),
    ("caas_data.services", "caas_data.operations"),  # tenant lifecycle, platform-wide jobs
    # The composition root and the face (with the per-area faces, where they exist).
    ("caas_data.layer", "caas_data", *(f"caas_data.{area}" for area in AREA_FACES)),
    ("caas_data.fastapi", "caas_data.testing", "caas_data.cli"),  # extensions
)

# Type-only imports of the composition root that are allowed: repositories and services are
# handed the layer that builds them and name its class in annotations. Tenancy and documents
# take what they need of the layer through Protocols (ScopeLayer, RoutingLayer), so nothing
# lower than repositories may name it, not even for typing.
TYPE_ONLY_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("caas_data.repositories", "caas_data.layer"),
        ("caas_data.services", "caas_data.layer"),
        ("caas_data.operations", "caas_data.layer"),
    }
)


@dataclass(frozen=True)
class Import:
    """One import of a caas_data module by another, and where it is."""

    importer: str
    imported: str
    line: int
    kind: str  # "module", "function" or "type-checking"


def layer_of(module: str) -> tuple[int, str]:
    """The layer index and the package prefix that places `module` in it."""
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    if best is None:
        raise LookupError(f"{module} is in no layer: add its package to LAYERS")
    return best


def module_name(root: Path, path: Path) -> str:
    """The dotted name of a source file under `root`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import of a `caas_data` module in one file, with where it sits."""
    importer = module_name(root, path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            child_kind = kind
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                child_kind = "function" if kind == "module" else kind
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for statement in child.body:
                    record(statement, "type-checking")
                    visit(statement, "type-checking")
                for statement in child.orelse:
                    record(statement, kind)
                    visit(statement, kind)
                continue
            record(child, kind)
            visit(child, child_kind)

    def record(node: ast.AST, kind: str) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            names = [base]
            # `from caas_data.x import y` may import the submodule `caas_data.x.y`.
            names += [
                f"{base}.{alias.name}" for alias in node.names if _is_module(root, base, alias.name)
            ]
        for name in names:
            if name == "caas_data" or name.startswith("caas_data."):
                found.append(Import(importer, name, getattr(node, "lineno", 0), kind))

    visit(ast.parse(path.read_text(), str(path)), "module")
    return found


def _is_module(root: Path, base: str, name: str) -> bool:
    target = root.joinpath(*base.split("."), name)
    return target.with_suffix(".py").exists() or (target / "__init__.py").exists()


def violations(root: Path) -> list[str]:
    """Every import that points from a lower layer to a higher one, as readable lines."""
    problems = []
    for path in sorted((root / "caas_data").rglob("*.py")):
        for found in imports_of(root, path):
            low, low_prefix = layer_of(found.importer)
            high, high_prefix = layer_of(found.imported)
            if high <= low:
                continue
            if found.kind == "type-checking" and (low_prefix, high_prefix) in TYPE_ONLY_ALLOWED:
                continue
            problems.append(
                f"{found.importer}:{found.line} imports {found.imported} ({found.kind}): "
                f"{low_prefix} (layer {low}) may not import {high_prefix} (layer {high})"
            )
    return problems


def test_layers_point_one_way() -> None:
    assert violations(ROOT) == []


def test_no_caas_data_import_inside_a_function() -> None:
    """An import placed inside a function hides a cycle from the reader: there is none left."""
    late = [
        f"{found.importer}:{found.line} imports {found.imported}"
        for path in sorted((ROOT / "caas_data").rglob("*.py"))
        for found in imports_of(ROOT, path)
        if found.kind == "function"
    ]
    assert late == []


def test_every_package_has_a_layer() -> None:
    for path in (ROOT / "caas_data").rglob("*.py"):
        layer_of(module_name(ROOT, path))  # raises for a module outside every layer


@pytest.mark.parametrize(
    ("where", "source", "kind"),
    [
        ("tenancy/context.py", "from caas_data.layer import DataLayer\n", "module"),
        (
            "documents/base.py",
            "def f():\n    from caas_data.repositories import base\n",
            "function",
        ),
        (
            "tenancy/context.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from caas_data.layer import DataLayer\n",
            "type-checking",
        ),
        ("engine/sessions.py", "from ..tenancy import context\n", "module"),
    ],
)
def test_the_checker_catches_a_wrong_import(
    tmp_path: Path, where: str, source: str, kind: str
) -> None:
    """A deliberately wrong import in a copy of the package layout is reported."""
    for package in ("engine", "tenancy", "documents", "repositories", "services"):
        (tmp_path / "caas_data" / package).mkdir(parents=True)
        (tmp_path / "caas_data" / package / "__init__.py").write_text("")
    (tmp_path / "caas_data" / "__init__.py").write_text("")
    (tmp_path / "caas_data" / "layer.py").write_text("class DataLayer: ...\n")
    (tmp_path / "caas_data" / where).write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1, found
    assert f"({kind})" in found[0]


def test_the_checker_allows_a_downward_import(tmp_path: Path) -> None:
    (tmp_path / "caas_data" / "repositories").mkdir(parents=True)
    (tmp_path / "caas_data" / "__init__.py").write_text("")
    (tmp_path / "caas_data" / "repositories" / "__init__.py").write_text(
        "from caas_data.errors import CaasDataError\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from caas_data.layer import DataLayer\n"
    )
    assert violations(tmp_path) == []
