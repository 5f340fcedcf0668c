"""Move caas_data's modules into one-way layers and rewrite every import to match (issue 13).

    python tools/layers_codemod.py          # from the repository root; --dry-run only prints

The layers, lowest first (a package imports only from packages below it):

    errors, config, clock
    <- engine (sessions, clusters, transactions)
    <- tenancy (ids, tiers, the scope; the guard: rules, guarded collection, cursors,
       cut-offs, guarded views, field encryption)
    <- documents (declarations, registry, routing, writes, indexes, cache, Beanie state)
    <- repositories (one module, or package, per document module)
    <- services (provisioning, resolver, moves, capacity, sharding plan, retention) and
       operations
    <- the layer (caas_data/layer.py: DataLayer, connect) and the face (caas_data/__init__)
    <- extensions (fastapi, testing, cli)

What it does, in order:

1. `git mv` each module in MOVES while its old file exists and its new one does not (a module
   that becomes a package, TO_PACKAGE, moves into the package under a new name);
2. writes the package faces in FACES that do not exist yet (never overwrites one);
3. rewrites, in caas_data, tests, examples, benchmarks, tools, compat, .ci, *.md, Makefile
   and pyproject.toml: dotted module names (`caas_data.engine.guard` ->
   `caas_data.tenancy.guard`), file paths (`caas_data/engine/guard.py`), and the names of
   `from M import a, b` lines whose names moved to another module (NAMES_MOVED, and the names
   a module-become-package now defines in one of its submodules);
4. sorts the imports of the files it rewrote and formats them (ruff, as the project does).

Re-runnable: a move happens only once, no new name is an old one, and a rewrite maps old
names to new ones only; on a tree where some branches still use old names (merged after the
moves) a second run rewrites just those, and on an up-to-date tree it prints "nothing to do".
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# Old module -> new module. No new name is an old one (checked in main()).
MOVES: dict[str, str] = {
    # The guard and what it is made of: tenancy (below the document declarations).
    "caas_data.engine.guard": "caas_data.tenancy.guard",
    "caas_data.engine.rules": "caas_data.tenancy.rules",
    "caas_data.engine.cursors": "caas_data.tenancy.cursors",
    "caas_data.engine.cutoffs": "caas_data.tenancy.cutoffs",
    "caas_data.engine.views": "caas_data.tenancy.views",
    "caas_data.engine.field_encryption": "caas_data.tenancy.field_encryption",
    # ...and the guard's parts other branches split out of guard.py and rules.py.
    "caas_data.engine.bulk_requests": "caas_data.tenancy.bulk_requests",
    "caas_data.engine.change_streams": "caas_data.tenancy.change_streams",
    "caas_data.engine.handle_scope": "caas_data.tenancy.handle_scope",
    "caas_data.engine.pipeline_rules": "caas_data.tenancy.pipeline_rules",
    "caas_data.engine.references": "caas_data.tenancy.references",
    "caas_data.engine.snapshots": "caas_data.tenancy.snapshots",
    # What reads the declarations: documents.
    "caas_data.engine.registry": "caas_data.documents.registry",
    "caas_data.engine.routing": "caas_data.documents.routing",
    "caas_data.engine.writes": "caas_data.documents.writes",
    "caas_data.engine.indexes": "caas_data.documents.indexes",
    # Services: the tenant lifecycle, placement and platform-wide jobs, above repositories.
    "caas_data.tenancy.provisioning": "caas_data.services.provisioning",
    "caas_data.tenancy.resolver": "caas_data.services.resolver",
    "caas_data.tenancy.moves": "caas_data.services.moves",
    "caas_data.tenancy.capacity": "caas_data.services.capacity",
    "caas_data.tenancy.move_feed": "caas_data.services.move_feed",
    "caas_data.tenancy.move_run": "caas_data.services.move_run",
    "caas_data.tenancy.move_verify": "caas_data.services.move_verify",
    "caas_data.engine.sharding": "caas_data.services.sharding",
    "caas_data.repositories.saas.retention": "caas_data.services.retention",
    # The composition root, above everything it composes.
    "caas_data.engine.layer": "caas_data.layer",
    # Repositories mirror the document modules (issue 13.6): a repository module sits in
    # the module, or the package, named after the document module it stores.
    "caas_data.repositories.api_keys": "caas_data.repositories.platform.api_keys",
    "caas_data.repositories.audit": "caas_data.repositories.analytics.audit",
    "caas_data.repositories.audit_chain": "caas_data.repositories.analytics.audit_chain",
    "caas_data.repositories.invoices": "caas_data.repositories.billing.invoices",
}

# Modules that become packages: their code moves to the named submodule; the package face
# (FACES) re-exports what it did, so `from caas_data.repositories.platform import X` still
# works. Imports of a name are rewritten to the submodule that now defines it.
TO_PACKAGE: dict[str, str] = {
    "caas_data.repositories.platform": "caas_data.repositories.platform.directory",
    "caas_data.repositories.analytics": "caas_data.repositories.analytics.events",
    "caas_data.repositories.billing": "caas_data.repositories.billing.subscriptions",
}

# Names that moved between modules (after the module renames above): `from <module> import
# <name>` is rewritten to import it from where it is defined now.
NAMES_MOVED: dict[str, dict[str, str]] = {
    # The engine's face no longer loads the layer above it (it re-exports write_concern only).
    "caas_data.engine": {
        "DataLayer": "caas_data.layer",
        "UnitOfWork": "caas_data.layer",
        "active_layer": "caas_data.layer",
        "connect": "caas_data.layer",
        "GuardedCollection": "caas_data.tenancy.guard",
    },
    # Defined where they belong; the old modules keep re-exporting them for users' code.
    "caas_data.documents.base": {"FieldEncryption": "caas_data.tenancy.field_encryption"},
    "caas_data.tenancy.tiers": {"HOME_CLUSTER": "caas_data.engine.clusters"},
}

# Packages the moves create, and their docstrings. A face is written when missing, never
# overwritten: a new package's face re-exports each submodule's `__all__` (so a module that
# became a package keeps every public name it had); services' face re-exports nothing.
FACES: dict[str, str] = {
    "caas_data.services": """Services: the tenant lifecycle and platform-wide jobs.

Provisioning, the placement resolver, moves between placements and clusters, capacity, the
sharding plan and retention. The layer (`caas_data.layer`) composes them; nothing below
imports them.""",
    "caas_data.repositories.platform": (
        "Repositories of the platform documents (`caas_data.documents.platform`)."
    ),
    "caas_data.repositories.analytics": (
        "Repositories of the analytics documents (`caas_data.documents.analytics`)."
    ),
    "caas_data.repositories.billing": (
        "Repositories of the billing documents (`caas_data.documents.billing`)."
    ),
}
REEXPORTING_FACES = frozenset(TO_PACKAGE)

REWRITE_GLOBS = (
    "caas_data/**/*.py",
    "tests/**/*.py",
    "examples/**/*.py",
    "benchmarks/**/*.py",
    "tools/**/*.py",
    "compat/**/*.py",
    "compat/**/*.txt",
    ".ci/**/*",
    "**/*.md",
    "Makefile",
    "pyproject.toml",
)
SKIP_PARTS = frozenset({".venv", ".git", "node_modules", "__pycache__", ".mypy_cache"})
SELF = Path(__file__).resolve()

ALL_MOVES: dict[str, str] = {**MOVES, **TO_PACKAGE}


def path_of(root: Path, module: str) -> Path:
    """The file of a module name (a package's `__init__.py` when the package exists)."""
    base = root.joinpath(*module.split("."))
    package = base / "__init__.py"
    return package if package.exists() else base.with_suffix(".py")


def _module_file(root: Path, module: str) -> Path:
    """The plain `.py` file of a module name (never a package face)."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def move_files(root: Path, dry_run: bool) -> list[str]:
    """`git mv` each module still at its old place; returns what was done."""
    done = []
    for old, new in ALL_MOVES.items():
        source, target = _module_file(root, old), _module_file(root, new)
        if not source.exists() or target.exists():
            continue
        done.append(f"git mv {source.relative_to(root)} {target.relative_to(root)}")
        if not dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "mv", str(source), str(target)], cwd=root, check=True)
    return done


def public_names(path: Path) -> list[str]:
    """A module's `__all__` (empty when it has none)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return [str(name) for name in ast.literal_eval(node.value)]
    return []


def face_text(root: Path, package: str, doc: str) -> str:
    """A package face: its docstring, and the re-exports of its submodules' `__all__`."""
    closing = '\n"""' if "\n" in doc else '"""'
    lines = [f'"""{doc}{closing}', ""]
    exported: list[str] = []
    if package in REEXPORTING_FACES:
        directory = root.joinpath(*package.split("."))
        for file in sorted(directory.glob("*.py")):
            names = public_names(file) if file.name != "__init__.py" else []
            if names:
                lines.append(f"from {package}.{file.stem} import {', '.join(sorted(names))}")
                exported += names
        lines += ["", f"__all__ = {sorted(exported)!r}"]
    return "\n".join(lines) + "\n"


def write_faces(root: Path, dry_run: bool) -> list[str]:
    """Write the package faces that do not exist yet."""
    done = []
    for package, doc in FACES.items():
        path = root.joinpath(*package.split("."), "__init__.py")
        if path.exists():
            continue
        relative = str(path.relative_to(root))
        done.append(f"write {relative}")
        if not dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(face_text(root, package, doc))
            subprocess.run(["git", "add", relative], cwd=root, check=True)
    return done


def defined_names(path: Path) -> set[str]:
    """The names a module defines at top level (classes, functions, assignments)."""
    if not path.exists():
        return set()
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


class Rewriter:
    """Rewrites the text of one file: module names, file paths, moved names."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._definers: dict[str, list[tuple[str, set[str]]]] = {}
        self._dotted = [(re.compile(rf"\b{re.escape(old)}\b"), new) for old, new in MOVES.items()]
        # Paths, in full (`caas_data/engine/guard.py`) and short (`engine/guard.py`) forms.
        self._paths = [
            (re.compile(rf"\b{re.escape(_slashed(old))}\.py\b"), f"{_slashed(new)}.py")
            for old, new in ALL_MOVES.items()
        ] + [
            (
                re.compile(rf"(?<![\w/.]){re.escape(_slashed(old)[10:])}\.py\b"),
                f"{_slashed(new)[10:]}.py",
            )
            for old, new in ALL_MOVES.items()
        ]

    def definers(self, package: str) -> list[tuple[str, set[str]]]:
        """Each submodule of a module-become-package and the names it defines."""
        if package not in self._definers:
            found = []
            for new in ALL_MOVES.values():
                if new.rpartition(".")[0] == package:
                    # Not moved yet (dry run): read the module at its old place.
                    old = next(o for o, n in ALL_MOVES.items() if n == new)
                    file = _module_file(self.root, new)
                    found.append(
                        (
                            new,
                            defined_names(file if file.exists() else _module_file(self.root, old)),
                        )
                    )
            self._definers[package] = found
        return self._definers[package]

    def home_of(self, module: str, name: str) -> tuple[str, str]:
        """Where `from module import name` imports `name` from now, and under which name.

        A submodule imported from its package (`from caas_data.tenancy import moves`) that
        moved is imported from its new package, aliased when its own name changed.
        """
        moved = NAMES_MOVED.get(module, {}).get(name)
        if moved is not None:
            return moved, name
        submodule = MOVES.get(f"{module}.{name}")
        if submodule is not None:
            package, _, new_name = submodule.rpartition(".")
            return package, new_name if new_name == name else f"{new_name} as {name}"
        if module in TO_PACKAGE:
            for defining, names in self.definers(module):
                if name in names:
                    return defining, name
        return module, name

    def split_from_import(self, match: re.Match[str]) -> str:
        """One `from M import ...` line, split by where each name is defined now."""
        module = match["module"]
        raw = match["multi"] if match["multi"] is not None else match["single"]
        if "#" in raw or "\\" in raw:
            return match[0]  # a comment or continuation inside: left for a human
        by_module: dict[str, list[str]] = {}
        for item in (n.strip() for n in raw.replace("\n", " ").split(",")):
            if not item:
                continue
            name, _, alias = (part.strip() for part in item.partition(" as "))
            home, imported = self.home_of(module, name)
            if alias:
                imported = f"{imported.partition(' as ')[0]} as {alias}"
            by_module.setdefault(home, []).append(imported)
        if list(by_module) == [module] and by_module[module] == [
            n.strip() for n in raw.replace("\n", " ").split(",") if n.strip()
        ]:
            return match[0]
        indent = match["indent"]
        return "\n".join(
            f"{indent}from {home} import {', '.join(sorted(group))}"
            for home, group in sorted(by_module.items())
        )

    def rewrite(self, text: str) -> str:
        """`text` with every old module name, path and moved name replaced by the new one."""
        for pattern, new in self._dotted:
            text = pattern.sub(new, text)
        for pattern, new in self._paths:
            text = pattern.sub(new, text)
        return _FROM_IMPORT.sub(self.split_from_import, text)


_FROM_IMPORT = re.compile(
    r"^(?P<indent>[ \t]*)from (?P<module>caas_data[\w.]*) import "
    r"(?:\((?P<multi>[^)]*)\)|(?P<single>[^\n(]+))",
    re.MULTILINE,
)


def _slashed(module: str) -> str:
    return module.replace(".", "/")


def files_to_rewrite(root: Path) -> Iterable[Path]:
    """Every file the globs name, once, skipping tool directories and this script."""
    seen: set[Path] = set()
    for pattern in REWRITE_GLOBS:
        for path in sorted(root.glob(pattern)):
            relative = path.relative_to(root)
            if path in seen or not path.is_file() or SKIP_PARTS.intersection(relative.parts):
                continue
            if path.resolve() == SELF:
                continue
            seen.add(path)
            yield path


def rewrite_files(root: Path, dry_run: bool) -> list[str]:
    """Rewrite imports (and dotted names and paths in strings, docs, config) in every file."""
    rewriter = Rewriter(root)
    done = []
    for path in files_to_rewrite(root):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewriter.rewrite(text)
        if new != text:
            done.append(f"rewrite {path.relative_to(root)}")
            if not dry_run:
                path.write_text(new)
    return done


def tidy(root: Path, files: list[str]) -> None:
    """Sort the rewritten imports and format those files, as the project's ruff would."""
    python = [f for f in files if f.endswith(".py")]
    if not python:
        return
    ruff = [sys.executable, "-m", "ruff"]
    fixes = ["check", "--select", "I,RUF022", "--fix", "--quiet"]
    subprocess.run([*ruff, *fixes, *python], cwd=root)
    subprocess.run([*ruff, "format", "--quiet", *python], cwd=root)


def main(argv: list[str] | None = None) -> int:
    """Run the moves and rewrites; print what changed (nothing to do on a second run)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    clash = set(ALL_MOVES) & set(ALL_MOVES.values())
    if clash:
        parser.error(f"a new module name is also an old one: {sorted(clash)}")
    done = move_files(root, args.dry_run) + write_faces(root, args.dry_run)
    done += rewrite_files(root, args.dry_run)
    if not args.dry_run:
        tidy(
            root, [line.split(" ", 1)[1] for line in done if line.startswith(("write", "rewrite"))]
        )
    for line in done:
        print(line)
    if not done:
        print("nothing to do: the tree is already in layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
