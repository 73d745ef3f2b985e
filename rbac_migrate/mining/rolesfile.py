"""The reviewable roles file: mined roles written for review, read back as typed records.

``role mine -o roles.json`` writes one; a reviewer may rename, drop or trim roles; ``role create
--from-file`` reads it through :func:`load_roles_file`, which accepts only a well-formed file
and names the first problem of any other in one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..dn import normalize, split_rdns
from ..errors import RbacMigrateError
from ..files import write_private
from ..roles.catalogue import check_role_name

FORMAT = "rbac-migrate roles"
VERSION = 1
MAX_BYTES = 64 * 1024 * 1024
REASONS = ("extra", "missing", "old-job")
METHODS = ("jobs", "exact")


class RolesFileError(RbacMigrateError):
    """A roles file that cannot be read or is not well formed."""


@dataclass(frozen=True)
class FileRole:
    """A role to create: its name and grant DNs, with the evidence it was mined from."""

    name: str
    grants: tuple[str, ...]
    description: str = ""
    baseline: bool = False
    stands_for: tuple[Mapping[str, str], ...] = ()
    holders: tuple[str, ...] = ()
    members: int | None = None  # people of the jobs it stands for; None for exact mining

    @property
    def coverage(self) -> int:
        return len(self.holders)


@dataclass(frozen=True)
class FileException:
    """A grant left as it is for its holders: an extra, a right their job's role has and they lack, an old job's."""

    grant: str
    why: str
    role: str
    holders: tuple[str, ...]
    detail: str = ""


@dataclass(frozen=True)
class RolesFile:
    method: str
    roles: tuple[FileRole, ...]
    exceptions: tuple[FileException, ...] = ()
    snapshot: int | None = None
    settings: Mapping[str, float | int | None] = field(default_factory=dict)
    version: int = VERSION


def dumps(roles: RolesFile) -> str:
    """The file's text: JSON, one role per object, grants as DNs."""
    document = {
        "format": FORMAT,
        "version": roles.version,
        "method": roles.method,
        "snapshot": roles.snapshot,
        "settings": dict(roles.settings),
        "roles": [
            {
                "name": r.name,
                "description": r.description,
                "baseline": r.baseline,
                "grants": list(r.grants),
                "stands_for": [dict(values) for values in r.stands_for],
                "members": r.members,
                "coverage": r.coverage,
                "holders": list(r.holders),
            }
            for r in roles.roles
        ],
        "exceptions": [
            {"grant": e.grant, "why": e.why, "role": e.role, "detail": e.detail, "holders": list(e.holders)}
            for e in roles.exceptions
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_roles_file(path: str | os.PathLike[str], roles: RolesFile) -> None:
    """Write the file readable by its owner only, whole or not at all."""
    write_private(path, dumps(roles), RolesFileError)


def load_roles_file(path: str | os.PathLike[str]) -> RolesFile:
    """Read and check a roles file; any problem is a :class:`RolesFileError` naming where it is."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RolesFileError(f"cannot read {name}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise RolesFileError(f"{name}: larger than {MAX_BYTES // 2**20} MiB, not a roles file")
    return loads(raw, name)


def loads(raw: bytes | str, name: str = "roles file") -> RolesFile:
    """Parse and check the text of a roles file."""
    text = _text(raw, name)
    try:
        document = json.loads(text)
    except RecursionError:
        raise RolesFileError(f"{name}: nested too deeply, not a roles file") from None
    except json.JSONDecodeError as exc:
        ended = exc.pos >= len(text.rstrip())
        why = "ends early (truncated?)" if ended else f"not valid JSON at line {exc.lineno} column {exc.colno}"
        raise RolesFileError(f"{name}: {why}: {exc.msg}") from None
    return _Checker(name).roles_file(document)


def _text(raw: bytes | str, name: str) -> str:
    if isinstance(raw, str):
        return raw
    if b"\0" in raw:
        raise RolesFileError(f"{name}: binary content, not a roles file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RolesFileError(f"{name}: not UTF-8 text (byte {exc.start}), not a roles file") from None


class _Checker:
    """Typed reads of the parsed JSON; each failure names the place, e.g. roles[2].grants[0]."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, where: str, message: str) -> RolesFileError:
        return RolesFileError(f"{self.name}: {where}: {message}" if where else f"{self.name}: {message}")

    def roles_file(self, document: Any) -> RolesFile:
        doc = self.obj(document, "", required={"format", "version", "roles"}, optional=_TOP_OPTIONAL)
        if doc["format"] != FORMAT:
            raise self.fail("format", f"expected {FORMAT!r}, got {_shown(doc['format'])}")
        version = self.integer(doc["version"], "version")
        if version != VERSION:
            raise self.fail("version", f"version {version} is not one this rbac-migrate reads ({VERSION})")
        method = doc.get("method", "jobs")
        if method not in METHODS:
            raise self.fail("method", f"expected one of {', '.join(METHODS)}, got {_shown(method)}")
        roles = tuple(self.role(item, f"roles[{i}]") for i, item in enumerate(self.array(doc["roles"], "roles")))
        if not roles:
            raise self.fail("roles", "no roles listed: nothing to create")
        self.unique(roles)
        exceptions = self.array(doc.get("exceptions", []), "exceptions")
        snapshot = doc.get("snapshot")
        return RolesFile(
            method=method,
            roles=roles,
            exceptions=tuple(self.exception(item, f"exceptions[{i}]") for i, item in enumerate(exceptions)),
            snapshot=None if snapshot is None else self.integer(snapshot, "snapshot"),
            settings=self.settings(doc.get("settings", {})),
            version=version,
        )

    def role(self, item: Any, where: str) -> FileRole:
        role = self.obj(item, where, required={"name", "grants"}, optional=_ROLE_OPTIONAL)
        name = self.string(role["name"], f"{where}.name")
        try:
            check_role_name(name)
        except RbacMigrateError as exc:
            raise self.fail(f"{where}.name", str(exc)) from None
        grants = tuple(self.dn(g, f"{where}.grants[{i}]") for i, g in enumerate(self.array(role["grants"], where)))
        if not grants:
            raise self.fail(f"{where}.grants", f"role {name} lists no grants")
        seen: set[str] = set()
        for i, grant in enumerate(grants):
            if normalize(grant) in seen:
                raise self.fail(f"{where}.grants[{i}]", f"{grant} is listed twice")
            seen.add(normalize(grant))
        members = role.get("members")
        holders = self.strings(role.get("holders", []), f"{where}.holders")
        if "coverage" in role and self.integer(role["coverage"], f"{where}.coverage") != len(holders):
            raise self.fail(f"{where}.coverage", f"says {role['coverage']} but {len(holders)} holders are listed")
        return FileRole(
            name=name,
            grants=grants,
            description=self.string(role.get("description", ""), f"{where}.description"),
            baseline=self.boolean(role.get("baseline", False), f"{where}.baseline"),
            stands_for=tuple(
                self.values(v, f"{where}.stands_for[{i}]")
                for i, v in enumerate(self.array(role.get("stands_for", []), f"{where}.stands_for"))
            ),
            holders=holders,
            members=None if members is None else self.integer(members, f"{where}.members"),
        )

    def exception(self, item: Any, where: str) -> FileException:
        found = self.obj(item, where, required={"grant", "why", "role", "holders"}, optional={"detail"})
        why = found["why"]
        if why not in REASONS:
            raise self.fail(f"{where}.why", f"expected one of {', '.join(REASONS)}, got {_shown(why)}")
        return FileException(
            grant=self.dn(found["grant"], f"{where}.grant"),
            why=why,
            role=self.string(found["role"], f"{where}.role"),
            holders=self.strings(found["holders"], f"{where}.holders"),
            detail=self.string(found.get("detail", ""), f"{where}.detail"),
        )

    def unique(self, roles: tuple[FileRole, ...]) -> None:
        seen: dict[str, int] = {}
        for i, role in enumerate(roles):
            key = role.name.lower()
            if key in seen:
                raise self.fail(f"roles[{i}].name", f"{role.name} is also the name of roles[{seen[key]}]")
            seen[key] = i

    def settings(self, value: Any) -> dict[str, float | int | None]:
        settings = self.obj(value, "settings", required=set(), optional=None)
        for key, item in settings.items():
            if item is not None and (isinstance(item, bool) or not isinstance(item, (int, float))):
                raise self.fail(f"settings.{key}", f"expected a number or null, got {_shown(item)}")
        return settings

    def obj(self, value: Any, where: str, required: set[str], optional: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_shown(value)}")
        missing = sorted(required - value.keys())
        if missing:
            raise self.fail(where, f"missing {', '.join(missing)}")
        if optional is not None:
            unknown = sorted(value.keys() - required - optional)
            if unknown:
                raise self.fail(where, f"unknown field {unknown[0]!r}")
        return value

    def array(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_shown(value)}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected text, got {_shown(value)}")
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        return tuple(self.string(item, f"{where}[{i}]") for i, item in enumerate(self.array(value, where)))

    def values(self, value: Any, where: str) -> dict[str, str]:
        found = self.obj(value, where, required=set(), optional=None)
        return {self.string(k, where): self.string(v, f"{where}.{k}") for k, v in found.items()}

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(where, f"expected a whole number, got {_shown(value)}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_shown(value)}")
        return value

    def dn(self, value: Any, where: str) -> str:
        text = self.string(value, where).strip()
        if not text or any("=" not in rdn or not rdn.partition("=")[2].strip() for rdn in split_rdns(text)):
            raise self.fail(where, f"expected a DN such as cn=NAME,ou=grants,..., got {_shown(value)}")
        return text


_TOP_OPTIONAL = {"method", "snapshot", "settings", "exceptions"}
_ROLE_OPTIONAL = {"description", "baseline", "stands_for", "members", "coverage", "holders"}


def _shown(value: Any) -> str:
    """A short, one-line rendering of a bad value for an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else text[:37] + "..."
