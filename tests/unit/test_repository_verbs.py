"""One verb table for every repository (issue 12.7), read from README.

README's section "Repositories: one verb table" is the rule: a table of verbs and name
patterns (`get_by_<key>`) every repository may use, and a table of the domain verbs each
repository adds. Every public method of every repository class must match one of them, and no
method takes the old actor keywords.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import FunctionType

import pytest

import caas_data.repositories
from caas_data.repositories import Repository

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### Repositories: one verb table"
OLD_ACTOR_KEYWORDS = {"deleted_by", "by", "editor_id", "added_by", "requester_id"}


def _tables() -> list[list[list[str]]]:
    text = README.read_text()
    assert SECTION in text, f"README lost its section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    tables: list[list[list[str]]] = []
    rows: list[list[str]] = []
    for line in [*body.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif rows:
            tables.append(rows[1:])  # without the header
            rows = []
    return tables


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def verb_patterns() -> list[re.Pattern[str]]:
    """The first table: verbs every repository may use; `<key>` stands for any words."""
    generic = _tables()[0]
    return [
        re.compile(re.sub(r"<\w+>", "[a-z0-9_]+", re.escape(name)) + "$")
        for row in generic
        for name in _names(row[0])
    ]


def domain_verbs() -> dict[str, set[str]]:
    """The second table: repository class name -> its domain verbs."""
    return {_names(row[0])[0]: set(_names(row[1])) for row in _tables()[1]}


def repository_classes() -> list[type[Repository]]:
    """Every repository class of caas_data, wherever its module lives."""
    package = caas_data.repositories
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        importlib.import_module(info.name)
    found: set[type[Repository]] = set()
    stack: list[type[Repository]] = [Repository]
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("caas_data.") and cls not in found:
            found.add(cls)
            stack.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def public_methods(cls: type) -> dict[str, object]:
    """Methods, static and class methods and properties the class itself defines."""
    return {
        name: value
        for name, value in vars(cls).items()
        if not name.startswith("_")
        and isinstance(value, FunctionType | staticmethod | classmethod | property)
    }


def test_the_tables_are_read() -> None:
    patterns = verb_patterns()
    assert any(p.match("get_by_external_id") for p in patterns)
    for old_spelling in ("by_author", "create_group", "delete_group", "remove", "add", "for_user"):
        assert not any(p.match(old_spelling) for p in patterns), old_spelling
    assert domain_verbs()["MessageSending"] >= {"send"}
    assert domain_verbs()["MessageRepository"] >= {"edit", "history"}


def test_the_domain_table_names_real_repositories() -> None:
    names = {cls.__name__ for cls in repository_classes()}
    assert set(domain_verbs()) - names == set()


@pytest.mark.parametrize("cls", repository_classes(), ids=lambda c: c.__name__)
def test_every_public_method_follows_the_verb_table(cls: type[Repository]) -> None:
    patterns = verb_patterns()
    allowed = set().union(*(domain_verbs().get(base.__name__, set()) for base in cls.__mro__))
    off_table = [
        name
        for name in public_methods(cls)
        if name not in allowed and not any(p.match(name) for p in patterns)
    ]
    assert off_table == [], f"{cls.__name__}: not in README's verb table: {off_table}"


@pytest.mark.parametrize("cls", repository_classes(), ids=lambda c: c.__name__)
def test_the_actor_is_always_actor(cls: type[Repository]) -> None:
    for name, value in public_methods(cls).items():
        func = value.fget if isinstance(value, property) else value
        if isinstance(func, staticmethod | classmethod):
            func = func.__func__
        assert callable(func)
        old = set(inspect.signature(func).parameters) & OLD_ACTOR_KEYWORDS
        assert old == set(), f"{cls.__name__}.{name} still takes {sorted(old)}: use actor="
