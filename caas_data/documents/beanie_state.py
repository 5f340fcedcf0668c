"""What Beanie decides about a document class, read the way Beanie reads it.

Two things users of Beanie rely on and the layer must agree with:

- **Abstract bases stay untouched.** `init_beanie` initialises every class between a document
  and `beanie.Document`, so it would initialise `BaseDocument`, `TenantDocument`... too:
  replace their field attributes with query expressions and give them collection settings. A
  pydantic class declared later inherits those attributes as field defaults (`_id='_id'`,
  no `__v` alias). Beanie never initialises `Document` itself; the layer's bases (marked
  `caas_abstract = True` in their own body) are put back to that state whenever a subclass
  is declared and after each `init_beanie`, so declaration order does not matter.
- **Collection names.** A class without `Settings.name` gets Beanie's default (the class
  name); an `is_root` hierarchy shares its root's collection (told apart by `_class_id`); a
  member of a `UnionDoc` lives in the union's collection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from beanie import Document, UnionDoc
from beanie.odm.fields import ExpressionField
from beanie.odm.settings.document import DocumentSettings

__all__ = [
    "PerInitialisation",
    "abstract_settings",
    "beanie_models",
    "collection_name",
    "collection_root",
    "is_abstract",
    "reset_abstract_bases",
]

# The class attributes Beanie's initialiser sets on every class it initialises.
_BEANIE_CLASS_STATE = frozenset(
    {
        "_cache",
        "_children",
        "_class_id",
        "_database_major_version",
        "_document_settings",
        "_inheritance_inited",
        "_link_fields",
        "_parent",
    }
)


def is_abstract(document_type: type[Any]) -> bool:
    """True for a base the layer never stores (declared with `caas_abstract = True`)."""
    return bool(document_type.__dict__.get("caas_abstract", False))


def reset_abstract_bases(document_type: type[Any]) -> None:
    """Undo Beanie's initialisation of every abstract base of `document_type`."""
    for base in document_type.__mro__:
        if not is_abstract(base):
            continue
        for name, value in list(base.__dict__.items()):
            if name in _BEANIE_CLASS_STATE or isinstance(value, ExpressionField):
                type.__delattr__(base, name)


_T = TypeVar("_T")


class PerInitialisation(Generic[_T]):
    """A value derived from a document class, built once per Beanie initialisation of it.

    Keyed by the settings object `init_beanie` gave the class: initialising it again gives it
    new settings (and perhaps new links, actions or an inheritance state), so the value is
    built again (a class not initialised yet is built again once it is).
    """

    def __init__(self, build: Callable[[type[Any]], _T]) -> None:
        self._build = build
        self._built: dict[type[Any], tuple[Any, _T]] = {}

    def __call__(self, document_type: type[Any]) -> _T:
        """The value for `document_type`'s current initialisation."""
        settings = document_type.__dict__.get("_document_settings")
        built = self._built.get(document_type)
        if built is None or built[0] is not settings:
            built = self._built[document_type] = (settings, self._build(document_type))
        return built[1]


def abstract_settings(document_type: type[Any]) -> DocumentSettings:
    """What an abstract base answers to `get_settings()`: Beanie's defaults (not a root).

    Beanie asks a class's parent whether it is an `is_root`; an abstract base is never
    initialised for good, and a subclass not yet initialised must still raise Beanie's
    `CollectionWasNotInitialized`, so the answer is not stored where subclasses inherit it.
    """
    own = document_type.__dict__.get("_document_settings")
    return own if isinstance(own, DocumentSettings) else DocumentSettings()


def _settings_value(document_type: type[Any], key: str) -> Any:
    return getattr(getattr(document_type, "Settings", None), key, None)


def _document_parent(document_type: type[Any]) -> type[Any] | None:
    """The one base Beanie follows (None at `Document` or at an abstract base)."""
    bases = [b for b in document_type.__bases__ if issubclass(b, Document)]
    if len(bases) != 1 or bases[0] is Document or is_abstract(bases[0]):
        return None
    return bases[0]


def collection_root(document_type: type[Any]) -> type[Any]:
    """The class owning the collection: the `is_root` class of a hierarchy, else itself."""
    root: type[Any] | None = None
    current: type[Any] | None = document_type
    while current is not None:
        if _settings_value(current, "is_root"):
            root = current
        current = _document_parent(current)
    return root if root is not None else document_type


def collection_name(document_type: type[Any]) -> str:
    """The logical collection name Beanie gives `document_type`."""
    union = _settings_value(document_type, "union_doc")
    if isinstance(union, type) and issubclass(union, UnionDoc):
        name = _settings_value(union, "name")
        return name if isinstance(name, str) and name else union.__name__
    owner = collection_root(document_type)
    name = _settings_value(owner, "name")
    return name if isinstance(name, str) and name else owner.__name__


def beanie_models(documents: Iterable[type[Any]]) -> list[type[Any]]:
    """What `init_beanie` must be given for `documents`: their `UnionDoc`s first (Beanie's rule)."""
    documents = list(documents)
    unions = [_settings_value(d, "union_doc") for d in documents]
    return [*dict.fromkeys(u for u in unions if isinstance(u, type)), *documents]
