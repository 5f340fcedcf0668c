"""One repository vocabulary and a small public face, applied as a re-runnable codemod (issue 12).

Run from the repository root: `python tools/vocabulary_codemod.py [--check] [--no-ruff]`.

What it does, keyed on the CLASS that defines a method (so renaming `remove` on one repository
leaves another's `remove` alone), wherever the classes live today:

1. Renames repository methods (`METHOD_RENAMES`): the definitions in the named class and its
   subclasses, and the call sites in caas_data, tests, examples, benchmarks, compat and the
   Python code blocks of the Markdown files. A call site is renamed when its receiver resolves to
   a class (`layer.repo(Cls)`, `Cls(...)`, a variable or fixture bound to one, an annotation, or
   a name hint), or, if it does not resolve, when the method name is defined only by renamed
   classes and is not a common name (`add`, `remove`, `start`...). Anything else is listed for
   hand review.
2. Renames keyword arguments that name who acts (`deleted_by=`, `by=`, `editor_id=`,
   `added_by=`, `requester_id=` -> `actor=`, `KWARG_RENAMES`): the parameter and its uses in
   the definition, and the keyword at call sites. A definition that already has the new name is
   left for hand review.
3. The public face (`AREAS`): writes `caas_data/<area>/__init__.py` re-exporting each area's
   documents and repositories from wherever they are defined, removes those names from
   `caas_data/__init__.py`, and rewrites `from caas_data import X` / `caas_data.X` everywhere to
   the area package. Plumbing in `OUT_OF_TOP_LEVEL` leaves the top level the same way, for the
   module that defines it.

Idempotent: a second run changes nothing. Changed Python files get `ruff check --select I --fix`
and `ruff format` unless `--no-ruff`.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY_DIRS = ("caas_data", "tests", "examples", "benchmarks", "compat", "tools")
SELF = Path(__file__).resolve()

# -- the verb table, as renames ----------------------------------------------------------------

# (class that defines the method, old name, new name, definition renamed by the tool?)
# A definition marked False is rewritten by hand (its body changes too); call sites still move.
METHOD_RENAMES: list[tuple[str, str, str, bool]] = [
    # reads: get_by_<key> raises, get_<x>_or_none answers None, list_by_<key> / list_<x> a list
    ("PlanRepository", "active_plans", "list_active", True),
    ("SubscriptionRepository", "current", "get_current_or_none", True),
    ("PaymentMethodRepository", "default", "get_default_or_none", True),
    ("GroupMemberRepository", "membership_or_none", "get_membership_or_none", True),
    ("GroupMemberRepository", "members", "list_by_group", True),
    ("GroupMemberRepository", "groups_of", "list_by_user", True),
    ("UserKeyRepository", "identity_of", "get_by_device", True),
    ("UserKeyRepository", "devices_of", "list_by_user", True),
    ("UserDeviceRepository", "for_user", "list_by_user", True),
    ("UserDeviceRepository", "push_targets", "list_push_targets", True),
    ("UserRelationshipRepository", "of_user", "list_by_user", True),
    ("MediaFileRepository", "by_uploader", "list_by_uploader", True),
    ("MediaFileRepository", "with_checksum", "list_by_checksum", True),
    ("MediaFileRepository", "scan_queue", "list_pending_scan", True),
    ("PostRepository", "by_author", "list_by_author", True),
    ("PostRepository", "using_file", "list_by_file", True),
    ("PostRepository", "public_feed", "list_public", True),
    ("MediaMetadataRepository", "for_file", "get_by_file_or_none", True),
    ("MediaMetadataRepository", "for_files", "get_many_by_files", True),
    ("_IpRuleRepository", "matching", "list_matching", True),
    ("SecurityPolicyRepository", "effective", "get_effective", True),
    ("EventRepository", "counts", "count_by_name", True),
    ("ConversationRepository", "unread_count", "count_unread", True),
    ("PrekeyBundleRepository", "remaining_one_time_prekeys", "count_one_time_prekeys", True),
    # writes: create / update / delete / purge, or the domain's own verb
    ("PlatformAdminRepository", "create_admin", "register", True),
    ("PlatformAdminRepository", "verify_password", "authenticate", True),
    ("PlatformAdminRepository", "change_password", "set_password", True),
    ("GroupRepository", "create_group", "create_with_members", True),
    ("GroupRepository", "delete_group", "soft_delete", False),
    ("InvoiceRepository", "create_draft", "draft", True),
    ("PaymentMethodRepository", "add", "attach", True),
    ("UserRelationshipRepository", "add", "get_or_create", True),
    ("UserRelationshipRepository", "remove", "delete_by_users", True),
    ("_IpRuleRepository", "remove", "delete_by_cidr", True),
    ("UserKeyRepository", "publish_identity", "publish", True),
    ("UserKeyRepository", "remove_device", "delete_by_device", True),
    ("PrekeyBundleRepository", "add_one_time_prekeys", "publish_one_time_prekeys", True),
    ("UserSessionRepository", "start", "issue", True),
    ("UserSessionRepository", "revoke_all", "revoke_by_user", True),
    ("MediaMetadataRepository", "record", "upsert_by_file", True),
    # retention: purge_older_than(cutoff, ...) everywhere
    ("AuditLogRepository", "delete_older_than", "purge_older_than", True),
    ("MessageRepository", "purge_before", "purge_older_than", True),
]

# (class that defines the method, method (old or new name), old keyword, new keyword)
KWARG_RENAMES: list[tuple[str, str, str, str]] = [
    ("Repository", "delete", "deleted_by", "actor"),
    ("Repository", "soft_delete", "deleted_by", "actor"),
    ("MessageRepository", "restore", "by", "actor"),
    ("MessageRepository", "edit", "editor_id", "actor"),
    ("GroupRepository", "join", "added_by", "actor"),
    ("GroupRepository", "kick", "by", "actor"),
    ("GroupRepository", "set_role", "by", "actor"),
    ("GroupRepository", "delete_group", "by", "actor"),
    ("PrekeyBundleRepository", "claim", "requester_id", "actor"),
    ("PrekeyBundleRepository", "claim_all_devices", "requester_id", "actor"),
]

# Names too common to rename without knowing the receiver (builtins' and libraries' methods).
COMMON_NAMES = frozenset(
    {
        "add",
        "remove",
        "start",
        "current",
        "default",
        "members",
        "record",
        "register",
        "edit",
        "matching",
        "counts",
        "history",
        "set",
        "get",
        "update",
        "delete",
        "restore",
    }
)

BUILTIN_METHODS = frozenset(
    n for t in (set, list, dict, str, bytes, int) for n in dir(t) if not n.startswith("_")
)

# Variable / fixture names that mean one repository when nothing else says which.
NAME_HINTS: dict[str, str] = {
    "sessions": "UserSessionRepository",
    "relationships": "UserRelationshipRepository",
    "contacts_repo": "UserRelationshipRepository",
    "methods": "PaymentMethodRepository",
    "payment_methods": "PaymentMethodRepository",
    "allow": "IpWhitelistRepository",
    "allow_list": "IpWhitelistRepository",
    "whitelist": "IpWhitelistRepository",
    "blocks": "BlockedIpRepository",
    "blocked": "BlockedIpRepository",
    "subscriptions": "SubscriptionRepository",
    "metadata": "MediaMetadataRepository",
    "members": "GroupMemberRepository",
    "admins": "PlatformAdminRepository",
    "devices": "UserDeviceRepository",
    "counters": "CounterRepository",
    "usage": "UsageRecordRepository",
}

# -- the public face ---------------------------------------------------------------------------

AREAS: dict[str, tuple[str, list[str]]] = {
    "platform": (
        "The platform area (seed: platform/): SaaS clients, applications, API keys, admins.",
        [
            "SaasClient",
            "ClientStatus",
            "SaasClientRepository",
            "Application",
            "ApplicationStatus",
            "ApplicationRepository",
            "ApiKey",
            "ApiKeyRepository",
            "ApiKeyPrincipal",
            "IssuedApiKey",
            "PlatformAdmin",
            "AdminRole",
            "AdminStatus",
            "PlatformAdminRepository",
        ],
    ),
    "saas": (
        "The per-tenant area (seed: saas/): users, messaging, media, groups, encryption, settings.",
        [
            "User",
            "UserStatus",
            "Presence",
            "UserRepository",
            "UserDevice",
            "DevicePlatform",
            "PushProvider",
            "UserDeviceRepository",
            "UserSession",
            "UserSessionRepository",
            "UserRelationship",
            "RelationshipKind",
            "UserRelationshipRepository",
            "Conversation",
            "ConversationKind",
            "ConversationRepository",
            "Message",
            "MessageEdit",
            "MessagePreview",
            "Attachment",
            "MessageRepository",
            "MessageSearchRepository",
            "Reaction",
            "ReactionRepository",
            "ReadReceipt",
            "ReadReceiptRepository",
            "MediaFile",
            "ScanStatus",
            "MediaFileRepository",
            "Post",
            "PostKind",
            "PostVisibility",
            "PostRepository",
            "MediaMetadata",
            "MediaMetadataRepository",
            "Group",
            "GroupVisibility",
            "GroupRepository",
            "GroupMember",
            "GroupRole",
            "MembershipStatus",
            "GroupMemberRepository",
            "UserKey",
            "UserKeyRepository",
            "PrekeyBundle",
            "SignedPrekey",
            "OneTimePrekey",
            "PrekeyBundleRepository",
            "TenantSettings",
            "RetentionSettings",
            "LimitSettings",
            "FeatureSettings",
            "TenantSettingsRepository",
            "Counter",
            "CounterRepository",
            "OwnedCounter",
            "OwnedCounterRepository",
        ],
    ),
    "billing": (
        "The billing area (seed: billing/): plans, subscriptions, invoices, usage, payment "
        "methods.",
        [
            "Plan",
            "BillingInterval",
            "PlanRepository",
            "Subscription",
            "SubscriptionStatus",
            "SubscriptionRepository",
            "Invoice",
            "InvoiceLine",
            "InvoiceStatus",
            "InvoiceRepository",
            "UsageRecord",
            "UsageMetric",
            "UsageRecordRepository",
            "PaymentMethod",
            "PaymentMethodRepository",
        ],
    ),
    "analytics": (
        "The analytics area (seed: analytics/): events, metrics, the audit log.",
        [
            "Event",
            "EventRepository",
            "Metric",
            "MetricPeriod",
            "MetricRepository",
            "AuditLog",
            "AuditAnchor",
            "AuditLogRepository",
            "ChainReport",
        ],
    ),
    "security": (
        "The security area (seed: security/): IP allow and block lists, security policies.",
        [
            "IpWhitelistEntry",
            "IpWhitelistRepository",
            "BlockedIp",
            "BlockedIpRepository",
            "IpAccessControl",
            "SecurityPolicy",
            "PolicyKind",
            "SecurityPolicyRepository",
        ],
    ),
}
AREA_OF: dict[str, str] = {name: area for area, (_, names) in AREAS.items() for name in names}

# Plumbing that leaves the top level for the module that defines it (found at run time).
OUT_OF_TOP_LEVEL = ("GuardedCollection", "TenantKeyring")

# name -> the module to import it from, once the top level no longer has it (set by `main`)
MOVED: dict[str, str] = {f"{name}": f"caas_data.{area}" for name, area in AREA_OF.items()}
AREA_PACKAGES = {f"caas_data.{area}" for area in AREAS}

# -- source positions --------------------------------------------------------------------------


@dataclass
class Source:
    """One piece of Python source (a file, or a Markdown code block) and its pending edits."""

    path: Path
    text: str
    line_offset: int = 0  # for Markdown blocks: lines before the block in the file
    char_start: int = 0  # for Markdown blocks: where the block starts in the file
    edits: list[tuple[int, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data = self.text.encode()
        self.starts = [0]
        for line in self.data.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        """Byte offset of an ast (line, UTF-8 column) position."""
        return self.starts[lineno - 1] + col

    def where(self, node: ast.AST) -> str:
        """`path:line` of a node, in the file (Markdown blocks included)."""
        rel = self.path.relative_to(ROOT)
        return f"{rel}:{getattr(node, 'lineno', 0) + self.line_offset}"

    def replace(self, start: int, end: int, new: str) -> None:
        """Queue one edit (skipped when it would change nothing)."""
        if self.data[start:end].decode() != new:
            self.edits.append((start, end, new))

    def result(self) -> str:
        """The text with the edits applied (from the end; overlapping edits are dropped)."""
        data = self.data
        last = len(data) + 1
        for start, end, new in sorted(set(self.edits), reverse=True):
            if end > last:
                continue  # overlaps an edit already applied (a rewritten import)
            data = data[:start] + new.encode() + data[end:]
            last = start
        return data.decode()


def py_files() -> Iterator[Path]:
    """The Python files the codemod rewrites."""
    for top in PY_DIRS:
        base = ROOT / top
        if base.is_dir():
            for path in sorted(base.rglob("*.py")):
                if path.resolve() != SELF and ".venv" not in path.parts:
                    yield path


def md_files() -> Iterator[Path]:
    """The Markdown files whose Python code blocks it rewrites."""
    for path in sorted(ROOT.rglob("*.md")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".git", ".venv", "node_modules") or "results" in rel.parts:
            continue
        yield path


FENCE = re.compile(r"^```(?:python|py)\s*\n(.*?)^```", re.S | re.M)

# -- the class index ---------------------------------------------------------------------------


@dataclass
class ClassInfo:
    """A class of the tree: its bases and its methods' parameters."""

    name: str
    bases: list[str]
    methods: dict[str, set[str]]  # method -> parameter names
    fields: set[str] = field(default_factory=set)  # data attributes (annotations, self.x = ...)


def base_name(node: ast.expr) -> str | None:
    """`Repository` for `Repository[D]`, `x.Repository` or `Repository`."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.arg]:
    """Every parameter of a function."""
    a = fn.args
    return [
        *a.posonlyargs,
        *a.args,
        *a.kwonlyargs,
        *([a.vararg] if a.vararg else []),
        *([a.kwarg] if a.kwarg else []),
    ]


def build_index(trees: list[tuple[Source, ast.Module]]) -> dict[str, ClassInfo]:
    """Every class of the tree by name (a name defined twice merges)."""
    index: dict[str, ClassInfo] = {}
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                methods = {
                    f.name: {p.arg for p in params(f)}
                    for f in node.body
                    if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                }
                info = index.setdefault(node.name, ClassInfo(node.name, [], {}))
                info.bases += [b for b in map(base_name, node.bases) if b]
                for name, ps in methods.items():
                    info.methods.setdefault(name, set()).update(ps)
                for item in ast.walk(node):
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        info.fields.add(item.target.id)
                    if (
                        isinstance(item, ast.Attribute)
                        and isinstance(item.ctx, ast.Store)
                        and isinstance(item.value, ast.Name)
                        and item.value.id == "self"
                    ):
                        info.fields.add(item.attr)
    return index


def closure(index: dict[str, ClassInfo], root: str) -> set[str]:
    """`root` and every class derived from it."""
    found = {root}
    grew = True
    while grew:
        grew = False
        for info in index.values():
            if info.name not in found and any(b in found for b in info.bases):
                found.add(info.name)
                grew = True
    return found


# -- receivers ---------------------------------------------------------------------------------


class Bindings:
    """What names and `self.` attributes mean, per function and class, for one module."""

    def __init__(self, tree: ast.Module, classes: set[str], fixtures: dict[str, str]) -> None:
        self.classes = classes
        self.fixtures = fixtures
        self.scopes: dict[ast.AST, dict[str, str]] = {}
        self.self_attrs: dict[ast.AST, dict[str, str]] = {}
        self.parents: dict[ast.AST, ast.AST] = {}
        self.aliases: dict[tuple[ast.AST, str], ast.Attribute] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        for scope in ast.walk(tree):
            if isinstance(scope, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef):
                self.scopes[scope] = self._collect(scope)
            if isinstance(scope, ast.ClassDef):
                self.self_attrs[scope] = self._collect_self(scope)

    def class_of(self, node: ast.expr | None) -> str | None:
        """The class an annotation names, or that an expression's value is an instance of."""
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node = ast.parse(node.value, mode="eval").body if node.value.isidentifier() else node
        if isinstance(node, ast.Await):
            return None
        if isinstance(node, ast.Name) and node.id in self.classes:
            return node.id
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "collection":
                return "GuardedCollection" if "GuardedCollection" in self.classes else None
            if isinstance(func, ast.Attribute) and func.attr == "repo" and node.args:
                return base_name(node.args[0]) if base_name(node.args[0]) in self.classes else None
            if isinstance(func, ast.Name) and func.id in self.classes:
                return func.id
        return None

    def _own_nodes(self, scope: ast.AST) -> Iterator[ast.AST]:
        stack = list(ast.iter_child_nodes(scope))
        while stack:
            node = stack.pop()
            yield node
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                stack.extend(ast.iter_child_nodes(node))

    def _collect(self, scope: ast.AST) -> dict[str, str]:
        found: dict[str, str] = {}
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            for p in params(scope):
                cls = self.class_of(p.annotation) or self.fixtures.get(p.arg)
                if cls:
                    found[p.arg] = cls
        for node in self._own_nodes(scope):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign):
                target, value = node.target, node.value
                if isinstance(target, ast.Name) and self.class_of(node.annotation):
                    found[target.id] = self.class_of(node.annotation) or ""
                    continue
            else:
                continue
            cls = self.class_of(value)
            if cls and isinstance(target, ast.Name):
                found[target.id] = cls
            if isinstance(value, ast.Attribute) and isinstance(target, ast.Name):
                self.aliases[(scope, target.id)] = value
        return found

    def alias(self, name: ast.Name) -> ast.Attribute | None:
        """`base` in `base = super().soft_delete; await base(...)`: the method it stands for."""
        node: ast.AST | None = name
        while node is not None:
            node = self.parents.get(node)
            if (node, name.id) in self.aliases:
                return self.aliases[(node, name.id)]
        return None

    def _collect_self(self, cls_node: ast.ClassDef) -> dict[str, str]:
        found: dict[str, str] = {}
        for node in ast.walk(cls_node):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                ret = self.class_of(node.returns)
                if ret:
                    found[node.name] = ret
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                t = node.targets[0]
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                ):
                    cls = self.class_of(node.value)
                    if cls:
                        found[t.attr] = cls
        return found

    def resolve(self, expr: ast.expr) -> str | None:
        """The class of a receiver expression, if anything says which."""
        direct = self.class_of(expr)
        if direct:
            return direct
        if isinstance(expr, ast.Name):
            node: ast.AST | None = expr
            if expr.id == "self":
                while node is not None and not isinstance(node, ast.ClassDef):
                    node = self.parents.get(node)
                return node.name if isinstance(node, ast.ClassDef) else None
            while node is not None:
                node = self.parents.get(node)
                if node in self.scopes and expr.id in self.scopes[node]:
                    return self.scopes[node][expr.id]
            return self.fixtures.get(expr.id) or NAME_HINTS.get(expr.id)
        if (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id == "self"
        ):
            node = expr
            while node is not None:
                node = self.parents.get(node)
                if isinstance(node, ast.ClassDef):
                    return self.self_attrs[node].get(expr.attr)
        return None

    def enclosing_class(self, node: ast.AST) -> str | None:
        """The class a method is defined in."""
        parent = self.parents.get(node)
        return parent.name if isinstance(parent, ast.ClassDef) else None


def find_fixtures(trees: list[tuple[Source, ast.Module]], classes: set[str]) -> dict[str, str]:
    """Functions (fixtures, helpers) whose value is one repository: their name means it."""
    fixtures: dict[str, str] = {}
    probe = Bindings(ast.Module(body=[], type_ignores=[]), classes, {})
    for _, tree in trees:
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not any(
                base_name(d.func if isinstance(d, ast.Call) else d) == "fixture"
                for d in fn.decorator_list
            ):
                continue
            cls = probe.class_of(fn.returns)
            for node in ast.walk(fn):
                if isinstance(node, ast.Return | ast.Yield) and node.value is not None:
                    cls = cls or probe.class_of(node.value)
            if cls:
                fixtures[fn.name] = cls
    return fixtures


# -- the rewrite -------------------------------------------------------------------------------


class Codemod:
    """The renames of the verb table and the face, applied to one source at a time."""

    def __init__(self, index: dict[str, ClassInfo], fixtures: dict[str, str]) -> None:
        self.index = index
        self.fixtures = fixtures
        self.review: list[str] = []
        self.method_rules: dict[str, list[tuple[set[str], str, bool]]] = {}
        for cls, old, new, by_tool in METHOD_RENAMES:
            if cls not in index:
                self.review.append(f"class {cls} not found: rename {old} -> {new} not applied")
                continue
            self.method_rules.setdefault(old, []).append((closure(index, cls), new, by_tool))
        self.kwarg_rules: list[tuple[set[str], set[str], str, str]] = []
        renamed_to = {(c, o): n for c, o, n, _ in METHOD_RENAMES}
        for cls, method, old, new in KWARG_RENAMES:
            if cls not in index:
                self.review.append(f"class {cls} not found: {method}({old}=) not renamed")
                continue
            names = {method, renamed_to.get((cls, method), method)}
            self.kwarg_rules.append((closure(index, cls), names, old, new))

    # -- methods -------------------------------------------------------------------------------

    def definers(self, method: str) -> set[str]:
        """Every class that defines `method`."""
        return {c.name for c in self.index.values() if method in c.methods}

    def new_method_name(self, src: Source, b: Bindings, node: ast.Attribute) -> str | None:
        """The new name of `node.attr` at this call site, or None to leave it."""
        rules = self.method_rules.get(node.attr)
        if not rules:
            return None
        if isinstance(node.ctx, ast.Store):
            return None
        receiver = b.resolve(node.value)
        if receiver is not None:
            for members, new, _ in rules:
                if receiver in members:
                    return new
            if receiver in self.index:
                return None  # another class's method of that name
        news = {new for _, new, _ in rules}
        covered = set().union(*(members for members, _, _ in rules))
        is_field = any(node.attr in c.fields for c in self.index.values())
        if (
            len(news) == 1
            and self.definers(node.attr) <= covered
            and not is_field
            and (node.attr not in COMMON_NAMES | BUILTIN_METHODS)
        ):
            return news.pop()
        parent = b.parents.get(node)
        called = isinstance(parent, ast.Call) and parent.func is node
        builtin = node.attr in BUILTIN_METHODS and "repo" not in ast.unparse(node.value)
        if called and not builtin:
            self.review.append(
                f"{src.where(node)}: `.{node.attr}` on an unresolved receiver "
                f"`{ast.unparse(node.value)}` (candidates: {', '.join(sorted(news))})"
            )
        return None

    def rename_defs(self, src: Source, tree: ast.Module, b: Bindings) -> None:
        """Rename the methods and keyword parameters defined in this source."""
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            cls = b.enclosing_class(fn)
            if cls is None:
                continue
            for members, new, by_tool in self.method_rules.get(fn.name, []):
                if cls not in members:
                    continue
                if not by_tool:
                    self.review.append(f"{src.where(fn)}: {cls}.{fn.name} -> {new} is a hand edit")
                    continue
                line_start = src.offset(fn.lineno, 0)
                line = src.data[line_start : src.offset(fn.lineno + 1, 0)].decode()
                m = re.search(rf"\bdef\s+({re.escape(fn.name)})\b", line)
                if m:
                    start = line_start + len(line[: m.start(1)].encode())
                    src.replace(start, start + len(fn.name.encode()), new)
            for members, names, old, new in self.kwarg_rules:
                if cls not in members or fn.name not in names:
                    continue
                args = {p.arg: p for p in params(fn)}
                if old not in args:
                    continue
                used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
                if new in args and old not in used and self.drop_keyword(src, fn, args[old]):
                    continue  # both, and the old one unused: it goes
                if new in args or new in used:
                    self.review.append(
                        f"{src.where(fn)}: {cls}.{fn.name} has both `{old}` and `{new}`: "
                        "merge them by hand"
                    )
                    continue
                p = args[old]
                start = src.offset(p.lineno, p.col_offset)
                src.replace(start, start + len(old), new)
                for n in ast.walk(fn):
                    if isinstance(n, ast.Name) and n.id == old:
                        start = src.offset(n.lineno, n.col_offset)
                        src.replace(start, start + len(old), new)
                self.rename_in_strings(src, b, fn, old, new)

    @staticmethod
    def drop_keyword(src: Source, fn: ast.FunctionDef | ast.AsyncFunctionDef, p: ast.arg) -> bool:
        """Remove an unused keyword-only parameter (and its default); False if it is not one."""
        kwonly, defaults = fn.args.kwonlyargs, fn.args.kw_defaults
        if p not in kwonly or len(kwonly) < 2:
            return False
        i = kwonly.index(p)

        def end_of(j: int) -> int:
            node: ast.AST = defaults[j] or kwonly[j]
            return src.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)

        if i + 1 < len(kwonly):
            nxt = kwonly[i + 1]
            src.replace(
                src.offset(p.lineno, p.col_offset), src.offset(nxt.lineno, nxt.col_offset), ""
            )
        else:
            src.replace(end_of(i - 1), end_of(i), "")
        return True

    @staticmethod
    def rename_in_strings(src: Source, b: Bindings, fn: ast.AST, old: str, new: str) -> None:
        """Strings of the definition that name the parameter: "old", `old`, old=."""
        for n in ast.walk(fn):
            if not (isinstance(n, ast.Constant) and isinstance(n.value, str)):
                continue
            if isinstance(b.parents.get(n), ast.JoinedStr):
                continue  # f-string parts have no positions of their own
            start = src.offset(n.lineno, n.col_offset)
            end = src.offset(n.end_lineno or n.lineno, n.end_col_offset or 0)
            text = src.data[start:end].decode()
            quote = text[:1]
            if text == f"{quote}{old}{quote}":
                src.replace(start, end, f"{quote}{new}{quote}")
                continue
            renamed = re.sub(rf"`{re.escape(old)}`", f"`{new}`", text)
            renamed = re.sub(rf"(?<![\w.]){re.escape(old)}=", f"{new}=", renamed)
            src.replace(start, end, renamed)

    def rename_uses(self, src: Source, tree: ast.Module, b: Bindings) -> None:
        """Rename the calls and keywords used in this source."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                new = self.new_method_name(src, b, node)
                if new:
                    end = src.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
                    src.replace(end - len(node.attr.encode()), end, new)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                self.rename_keywords(src, b, node, node.func)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                alias = b.alias(node.func)
                if alias is not None:
                    self.rename_keywords(src, b, node, alias)

    def rename_keywords(
        self, src: Source, b: Bindings, call: ast.Call, func: ast.Attribute
    ) -> None:
        """Rename the keywords of one call to a renamed method."""
        for kw in call.keywords:
            if kw.arg is None:
                continue
            for members, names, old, new in self.kwarg_rules:
                if kw.arg != old or func.attr not in names:
                    continue
                receiver = b.resolve(func.value)
                if receiver is not None and receiver in self.index and receiver not in members:
                    continue
                others = {
                    c for c in self.definers(func.attr) if old in self.index[c].methods[func.attr]
                } - members
                if receiver is None and others:
                    self.review.append(
                        f"{src.where(call)}: `{func.attr}({old}=...)` on an unresolved receiver"
                    )
                    continue
                start = src.offset(kw.lineno, kw.col_offset)
                src.replace(start, start + len(old), new)

    def rename_prose(self, text: str) -> str:
        """`Class.old` in docstrings, comments and Markdown prose becomes `Class.new`."""
        for old, rules in self.method_rules.items():
            for members, new, _ in rules:
                for cls in sorted(members):
                    text = re.sub(rf"\b{re.escape(cls)}\.{re.escape(old)}\b", f"{cls}.{new}", text)
        return text

    # -- the face ------------------------------------------------------------------------------

    def rewrite_imports(self, src: Source, tree: ast.Module) -> None:
        """`from caas_data import X` and `caas_data.X` for names that went to an area."""
        module = self.module_name(src.path)
        if module == "caas_data" or module in AREA_PACKAGES:
            return
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "caas_data" and node.level == 0:
                moved = [a for a in node.names if a.name in MOVED]
                if not moved:
                    continue
                groups: dict[str, list[ast.alias]] = {}
                for a in node.names:
                    target = MOVED.get(a.name, "caas_data")
                    groups.setdefault(target, []).append(a)
                indent = " " * node.col_offset
                text = f"\n{indent}".join(
                    import_line(mod, names, indent) for mod, names in sorted(groups.items())
                )
                start = src.offset(node.lineno, node.col_offset)
                end = src.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
                src.replace(start, end, text)
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "caas_data"
                and node.attr in MOVED
            ):
                end = src.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
                start = end - len(node.attr)
                src.replace(
                    start, end, f"{MOVED[node.attr].removeprefix('caas_data.')}.{node.attr}"
                )

    @staticmethod
    def module_name(path: Path) -> str:
        """The dotted module name of a file of the tree."""
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)


def import_line(module: str, names: list[ast.alias], indent: str) -> str:
    """One `from module import ...` statement, parenthesized when over 100 columns."""
    items = [a.name if a.asname is None else f"{a.name} as {a.asname}" for a in names]
    one = f"from {module} import {', '.join(items)}"
    if len(indent + one) <= 100:
        return one
    inner = "".join(f"{indent}    {item},\n" for item in items)
    return f"from {module} import (\n{inner}{indent})"


# -- the face packages -------------------------------------------------------------------------


def definitions(trees: list[tuple[Source, ast.Module]]) -> dict[str, set[str]]:
    """Where each top-level class, function and constant of caas_data is defined."""
    classes: dict[str, set[str]] = {}
    others: dict[str, set[str]] = {}
    for src, tree in trees:
        module = Codemod.module_name(src.path)
        if not module.startswith("caas_data") or src.path.name == "__init__.py":
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                classes.setdefault(node.name, set()).add(module)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        others.setdefault(t.id, set()).add(module)
    # a class or function wins over a module's private alias of the same name
    return {**others, **classes}


def area_package(area: str, doc: str, names: list[str], where: dict[str, set[str]]) -> str:
    """The text of one area package: its imports and `__all__`."""
    by_module: dict[str, list[str]] = {}
    for name in names:
        modules = where.get(name, set())
        if len(modules) != 1:
            raise SystemExit(f"{name}: defined in {sorted(modules) or 'no module'}; fix AREAS")
        by_module.setdefault(next(iter(modules)), []).append(name)
    lines = [f'"""{doc}"""', ""]
    for module in sorted(by_module):
        lines.append(import_line(module, [ast.alias(n) for n in sorted(by_module[module])], ""))
    lines += ["", "__all__ = ["]
    lines += [f'    "{n}",' for n in sorted(names)]
    lines += ["]", ""]
    return "\n".join(lines)


def rewrite_top_level(src: Source, tree: ast.Module) -> None:
    """Drop the area names from `caas_data/__init__.py` (its `__getattr__` reaches the areas)."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            keep = [a for a in node.names if a.name not in MOVED]
            if len(keep) != len(node.names):
                start = src.offset(node.lineno, 0)
                end = src.offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
                src.replace(start, end, import_line(node.module or "", keep, "") if keep else "")
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List)
        ):
            for elt in node.value.elts:
                if isinstance(elt, ast.Constant) and elt.value in MOVED:
                    start = src.offset(elt.lineno, elt.col_offset)
                    end = src.offset(elt.end_lineno or elt.lineno, elt.end_col_offset or 0)
                    # the element, its comma and the line's indentation
                    while src.data[end : end + 1] in (b",", b" "):
                        end += 1
                    line_start = src.offset(elt.lineno, 0)
                    if src.data[line_start:start].strip() == b"":
                        start = line_start
                        if src.data[end : end + 1] == b"\n":
                            end += 1
                    src.replace(start, end, "")


# -- driver ------------------------------------------------------------------------------------


def md_sources(path: Path) -> list[Source]:
    """The Python code blocks of a Markdown file."""
    text = path.read_text()
    return [
        Source(path, m.group(1), text[: m.start(1)].count("\n"), m.start(1))
        for m in FENCE.finditer(text)
    ]


def parse(src: Source, review: list[str]) -> ast.Module | None:
    """Parse a source, or list it for hand review."""
    try:
        return ast.parse(src.text)
    except SyntaxError as exc:
        review.append(
            f"{src.path.relative_to(ROOT)}:{src.line_offset + (exc.lineno or 0)}: "
            f"not parsed ({exc.msg}); check by hand"
        )
        return None


def main() -> int:
    """Apply the codemod to the tree."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report what would change; write nothing")
    ap.add_argument("--no-ruff", action="store_true", help="do not sort imports / format after")
    opts = ap.parse_args()
    review: list[str] = []

    py = [Source(p, p.read_text()) for p in py_files()]
    md = {p: md_sources(p) for p in md_files()}
    trees = [(s, t) for s in py if (t := parse(s, review)) is not None]
    md_trees = [
        (s, t) for blocks in md.values() for s in blocks if (t := parse(s, review)) is not None
    ]
    where = definitions(trees)
    for name in OUT_OF_TOP_LEVEL:
        modules = where.get(name, set())
        if len(modules) != 1:
            raise SystemExit(f"{name}: defined in {sorted(modules) or 'no module'}")
        MOVED[name] = next(iter(modules))
    index = build_index(trees)
    classes = set(index)
    fixtures = find_fixtures(trees, classes)
    mod = Codemod(index, fixtures)
    mod.review[:0] = review

    for src, tree in [*trees, *md_trees]:
        b = Bindings(tree, classes, fixtures)
        mod.rename_defs(src, tree, b)
        mod.rename_uses(src, tree, b)
        mod.rewrite_imports(src, tree)
        if src.path == ROOT / "caas_data" / "__init__.py":
            rewrite_top_level(src, tree)

    changed: list[Path] = []
    py_new = {src.path: new for src in py if (new := mod.rename_prose(src.result())) != src.text}
    ruff = str(Path(sys.executable).parent / "ruff")
    unformatted: set[str] = set()
    if py_new and not opts.check and not opts.no_ruff:
        # format only files that were formatted before: no unrelated churn in the others
        out = subprocess.run(
            [ruff, "format", "--check", *map(str, py_new)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        unformatted = {
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if line.startswith("Would reformat:")
        }
    for path, new in py_new.items():
        changed.append(path)
        if not opts.check:
            path.write_text(new)
    for path, blocks in md.items():
        text = path.read_text()
        out = text
        for src in reversed(blocks):  # block offsets stay valid from the end backwards
            new = src.result()
            if new != src.text:
                start = src.char_start
                out = out[:start] + new + out[start + len(src.text) :]
        out = mod.rename_prose(out)
        if out != text:
            changed.append(path)
            if not opts.check:
                path.write_text(out)

    for area, (doc, names) in AREAS.items():
        target = ROOT / "caas_data" / area / "__init__.py"
        text = area_package(area, doc, names, where)
        if not target.exists() or target.read_text() != text:
            changed.append(target)
            if not opts.check:
                target.parent.mkdir(exist_ok=True)
                target.write_text(text)

    py_changed = [str(p) for p in changed if p.suffix == ".py"]
    if py_changed and not opts.check and not opts.no_ruff:
        subprocess.run([ruff, "check", "-q", "--select", "I", "--fix", *py_changed], check=False)
        formatted = [
            p
            for p in py_changed
            if p not in unformatted and str(Path(p).relative_to(ROOT)) not in unformatted
        ]
        subprocess.run([ruff, "format", "-q", *formatted], check=False)

    for path in changed:
        print(f"{'would change' if opts.check else 'changed'}: {path.relative_to(ROOT)}")
    if mod.review:
        print("\nfor hand review:")
        for line in dict.fromkeys(mod.review):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
