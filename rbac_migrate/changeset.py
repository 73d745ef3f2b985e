"""Change sets: the one typed description of every write, and its file form. Pure.

Migration, onboarding, role edits, remediation and rule-based assignment all build a
``ChangeSet``; the engine (migration/engine.py) is the only thing that carries one out. A change
set is a list of units. A unit is written as one piece (one LDAP transaction where the server
offers it) and then verified: every value it touches is read back, and every subject's effective
access must equal what the unit promised (``Subject.after``).

Files carry a schema version and the intent the change set was built from; ``apply`` rebuilds
the change set from that intent against the live directory and never trusts the rest of the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import RbacMigrateError

SCHEMA = "rbac-migrate/change-set"
VERSION = 2
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 12

ADD, DELETE, CREATE, REMOVE = "add", "delete", "create", "remove"
MEMBER_OPS = (ADD, DELETE)
ENTRY_OPS = (CREATE, REMOVE)
KINDS = (
    "migrate",
    "onboard",
    "role-create",
    "role-add-grant",
    "role-remove-grant",
    "role-delete",
    "remediate",
    "role-sync",
)


class ChangeSetError(RbacMigrateError):
    """A change-set file that cannot be used as it is."""


@dataclass(frozen=True)
class Ref:
    """An entry a change rests on: where it is, and who it is (entryUUID / objectGUID)."""

    dn: str
    uuid: str | None
    name: str = ""


@dataclass(frozen=True)
class Edit:
    """One value-level change, or the creation or removal of one group entry.

    ``add``/``delete``: ``member`` is added to or deleted from ``group``'s member attribute.
    ``create``: ``group`` is created with ``attributes`` (member values included).
    ``remove``: ``group`` is deleted; ``attributes`` hold what it had, so rollback can re-create it.
    A ``member`` with no identity is accepted only to delete a value that names no entry
    (``dangling``), which the engine checks live.
    """

    op: str
    group: Ref
    member: Ref | None = None
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    dangling: bool = False

    def attribute_map(self) -> dict[str, list[str]]:
        return {name: list(values) for name, values in self.attributes}


@dataclass(frozen=True)
class Subject:
    """A user whose effective access a unit changes, or promises to leave alone.

    ``before`` and ``after`` are normalised DNs of grant groups reached (nesting included).
    """

    user: Ref
    before: frozenset[str]
    after: frozenset[str]

    @property
    def gained(self) -> frozenset[str]:
        return self.after - self.before

    @property
    def lost(self) -> frozenset[str]:
        return self.before - self.after


@dataclass
class Unit:
    """Edits written together and verified together: usually one user's."""

    label: str
    edits: list[Edit] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # direct grants shown for review, not changed


@dataclass
class ChangeSet:
    """What one write command will do. ``intent`` is what apply rebuilds it from."""

    kind: str
    title: str
    intent: dict[str, Any]
    units: list[Unit] = field(default_factory=list)
    role: Ref | None = None
    directory: str = ""
    created_at: str = ""
    snapshot: int | None = None

    @property
    def edits(self) -> list[Edit]:
        return [edit for unit in self.units for edit in unit.edits]

    @property
    def removals(self) -> int:
        return sum(1 for edit in self.edits if edit.op == DELETE)

    @property
    def empty(self) -> bool:
        return not self.edits


# -- file form -----------------------------------------------------------------------------------


def to_dict(changes: ChangeSet) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "kind": changes.kind,
        "title": changes.title,
        "created_at": changes.created_at,
        "directory": changes.directory,
        "snapshot": changes.snapshot,
        "intent": changes.intent,
        "role": _ref_dict(changes.role) if changes.role else None,
        "units": [_unit_dict(unit) for unit in changes.units],
    }


def dumps(changes: ChangeSet) -> str:
    return json.dumps(to_dict(changes), indent=2, sort_keys=False) + "\n"


def digest(data: bytes) -> str:
    """What the store records for a written plan file: any later edit changes it."""
    return hashlib.sha256(data).hexdigest()


def _ref_dict(ref: Ref) -> dict[str, Any]:
    return {"dn": ref.dn, "uuid": ref.uuid, "name": ref.name}


def _unit_dict(unit: Unit) -> dict[str, Any]:
    return {
        "label": unit.label,
        "edits": [_edit_dict(edit) for edit in unit.edits],
        "subjects": [
            {"user": _ref_dict(s.user), "before": sorted(s.before), "after": sorted(s.after)} for s in unit.subjects
        ],
        "kept": list(unit.kept),
    }


def _edit_dict(edit: Edit) -> dict[str, Any]:
    found: dict[str, Any] = {"op": edit.op, "group": _ref_dict(edit.group)}
    if edit.member is not None:
        found["member"] = _ref_dict(edit.member)
    if edit.attributes:
        found["attributes"] = edit.attribute_map()
    if edit.dangling:
        found["dangling"] = True
    return found


def loads(data: bytes, source: str) -> ChangeSet:
    """Parse and validate a change-set file; anything else is one ChangeSetError line."""
    if len(data) > MAX_FILE_BYTES:
        raise ChangeSetError(f"{source} is too large to be a change set")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ChangeSetError(f"{source} is not a change set: it is not UTF-8 text") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChangeSetError(f"{source} is not a change set (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise ChangeSetError(f"{source} is not a change set: nested too deeply") from None
    if _depth(raw) > MAX_DEPTH:
        raise ChangeSetError(f"{source} is not a change set: nested too deeply")
    reader = _Reader(source)
    return reader.change_set(raw)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class _Reader:
    """Typed reading of the parsed JSON, naming the field that is wrong."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, what: str) -> ChangeSetError:
        return ChangeSetError(f"{self.source}: {where} {what}")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be an object")
        return value

    def lst(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "must be a list")
        return value

    def text(self, value: Any, where: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(where, "must be text")
        return value

    def ref(self, value: Any, where: str) -> Ref:
        data = self.obj(value, where)
        return Ref(
            dn=self.text(data.get("dn"), f"{where}.dn") or "",
            uuid=self.text(data.get("uuid"), f"{where}.uuid", optional=True),
            name=self.text(data.get("name", ""), f"{where}.name") or "",
        )

    def change_set(self, raw: Any) -> ChangeSet:
        data = self.obj(raw, "the file")
        if data.get("schema") != SCHEMA:
            raise ChangeSetError(f"{self.source} is not a change set written by rbac-migrate")
        if data.get("version") != VERSION:
            raise ChangeSetError(
                f"{self.source} is a change set of version {data.get('version')!r}; this rbac-migrate reads "
                f"version {VERSION}: plan it again"
            )
        kind = self.text(data.get("kind"), "kind")
        if kind not in KINDS:
            raise self.fail("kind", f"must be one of {', '.join(KINDS)}")
        snapshot = data.get("snapshot")
        if snapshot is not None and (not isinstance(snapshot, int) or isinstance(snapshot, bool)):
            raise self.fail("snapshot", "must be a number")
        return ChangeSet(
            kind=kind,
            title=self.text(data.get("title", ""), "title") or "",
            intent=self.obj(data.get("intent"), "intent"),
            units=[self.unit(u, f"units[{i}]") for i, u in enumerate(self.lst(data.get("units"), "units"))],
            role=self.ref(data["role"], "role") if data.get("role") is not None else None,
            directory=self.text(data.get("directory", ""), "directory") or "",
            created_at=self.text(data.get("created_at", ""), "created_at") or "",
            snapshot=snapshot,
        )

    def unit(self, raw: Any, where: str) -> Unit:
        data = self.obj(raw, where)
        edits = [
            self.edit(e, f"{where}.edits[{i}]") for i, e in enumerate(self.lst(data.get("edits"), f"{where}.edits"))
        ]
        subjects = [
            self.subject(s, f"{where}.subjects[{i}]")
            for i, s in enumerate(self.lst(data.get("subjects", []), f"{where}.subjects"))
        ]
        kept = [self.text(k, f"{where}.kept") or "" for k in self.lst(data.get("kept", []), f"{where}.kept")]
        return Unit(self.text(data.get("label", ""), f"{where}.label") or "", edits, subjects, kept)

    def edit(self, raw: Any, where: str) -> Edit:
        data = self.obj(raw, where)
        op = data.get("op")
        if op not in MEMBER_OPS + ENTRY_OPS:
            raise self.fail(f"{where}.op", "must be add, delete, create or remove")
        member = self.ref(data["member"], f"{where}.member") if data.get("member") is not None else None
        if op in MEMBER_OPS and member is None:
            raise self.fail(f"{where}.member", "is missing")
        attributes = self.obj(data.get("attributes", {}), f"{where}.attributes")
        pairs = []
        for name, values in attributes.items():
            items = tuple(self.text(v, f"{where}.attributes.{name}") or "" for v in self.lst(values, name))
            pairs.append((name, items))
        dangling = data.get("dangling", False)
        if not isinstance(dangling, bool):
            raise self.fail(f"{where}.dangling", "must be true or false")
        return Edit(op, self.ref(data.get("group"), f"{where}.group"), member, tuple(pairs), dangling)

    def subject(self, raw: Any, where: str) -> Subject:
        data = self.obj(raw, where)

        def grants(key: str) -> frozenset[str]:
            return frozenset(self.text(v, f"{where}.{key}") or "" for v in self.lst(data.get(key), f"{where}.{key}"))

        return Subject(self.ref(data.get("user"), f"{where}.user"), grants("before"), grants("after"))
