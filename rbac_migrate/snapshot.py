"""Take a snapshot: read users and managed groups from the directory into plain data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from . import dn as dnutil
from .config import Settings
from .errors import ConfigError
from .model import DANGLING, EXTERNAL, GRANT, ROLE, USER, Entry, Snapshot

GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"
Progress = Callable[[str, int], None]


def as_filter(text: str, name: str) -> str:
    """Accept 'objectClass=person' as well as '(objectClass=person)'; reject unbalanced ones."""
    text = text.strip()
    if not text.startswith("("):
        text = f"({text})"
    if text.count("(") != text.count(")"):
        raise ConfigError(f"{name} '{text}' is not a valid LDAP filter: unbalanced parentheses")
    return text


def identity_attribute(settings: Settings) -> str:
    """entryUUID on OpenLDAP, objectGUID on Active Directory: identity that survives renames."""
    return "objectGUID" if settings.flavour == "ad" else "entryUUID"


class _Builder:
    """Collects entries and resolves member values to them."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.by_raw: dict[bytes, int] = {}
        self.by_norm: dict[str, int] = {}

    def add(self, kind: str, dn: str, name: str, norm: str | None = None, **fields) -> Entry | None:
        norm = norm or dnutil.normalize(dn)
        if norm in self.by_norm:
            return None
        entry = Entry(idx=len(self.entries), kind=kind, dn=dn, name=name, **fields)
        self.entries.append(entry)
        # Member values almost always repeat the DN byte for byte: match raw bytes first.
        self.by_raw[dn.encode("utf-8")] = entry.idx
        self.by_norm[norm] = entry.idx
        return entry

    def lookup(self, value: bytes) -> int | None:
        found = self.by_raw.get(value)
        if found is None:
            found = self.by_norm.get(dnutil.normalize(value.decode("utf-8", "replace")))
        return found


def take(directory, settings: Settings, progress: Progress | None = None) -> Snapshot:
    """Read users, grant groups and role groups; resolve every member value."""
    settings.require("user_base", "grant_base", "role_base")
    for name in ("user_base", "grant_base", "role_base"):
        directory.check_base(name, getattr(settings, name))
    report = progress or (lambda _stage, _count: None)
    taken_at = datetime.now(timezone.utc)
    builder = _Builder()
    _read_users(directory, settings, builder, report)
    raw_members = _read_groups(directory, settings, builder, report)
    members = _resolve_members(directory, builder, raw_members, report)
    return Snapshot(
        taken_at=taken_at,
        source=directory.target,
        flavour=settings.flavour,
        bases={k: getattr(settings, k) for k in ("user_base", "grant_base", "role_base")},
        entries=builder.entries,
        members=members,
    )


def _read_users(directory, settings: Settings, builder: _Builder, report: Progress) -> None:
    user_filter = as_filter(settings.user_filter, "user_filter")
    disabled_filter = as_filter(settings.disabled_filter, "disabled_filter")
    disabled = {
        dnutil.normalize(dn)
        for dn, _ in directory.search_raw(settings.user_base, f"(&{user_filter}{disabled_filter})", ["1.1"])
    }
    uuid_attr = identity_attribute(settings).lower()
    id_attr = settings.id_attribute.lower()
    peers = [(name, name.lower()) for name in settings.peer_attributes]
    attributes = [identity_attribute(settings), settings.id_attribute, *settings.peer_attributes]
    keys_cache: dict = {}
    shared_attrs: dict[tuple, dict[str, str]] = {}  # peers share one mapping: far fewer objects
    count = 0
    for dn, raw in directory.search_raw(settings.user_base, user_filter, attributes):
        values = directory.first_values(raw, keys_cache)
        peer_values = tuple(values.get(key) for _label, key in peers)
        attrs = shared_attrs.get(peer_values)
        if attrs is None:
            attrs = shared_attrs[peer_values] = {
                label: value for (label, _key), value in zip(peers, peer_values, strict=True) if value is not None
            }
        norm = dnutil.normalize(dn)
        builder.add(
            USER,
            dn,
            values.get(id_attr) or dnutil.first_value(dn),
            norm=norm,
            uuid=values.get(uuid_attr),
            enabled=norm not in disabled,
            attrs=attrs,
        )
        count += 1
        if count % 10000 == 0:
            report("users", count)
    report("users", count)


def _read_groups(directory, settings: Settings, builder: _Builder, report: Progress) -> dict[int, list[bytes]]:
    uuid_attr = identity_attribute(settings)
    member_key = settings.member_attribute.lower()
    raw_members: dict[int, list[bytes]] = {}
    keys_cache: dict = {}
    # The more specific base wins when one base lies inside the other.
    bases = sorted(
        [(settings.role_base, ROLE), (settings.grant_base, GRANT)],
        key=lambda item: -len(dnutil.normalize(item[0])),
    )
    for base, kind in bases:
        for dn, raw in directory.search_raw(base, GROUP_FILTER, [uuid_attr, "cn", settings.member_attribute]):
            values = directory.first_values(raw, keys_cache)
            name = values.get("cn") or dnutil.first_value(dn)
            entry = builder.add(kind, dn, name, uuid=values.get(uuid_attr.lower()))
            if entry is not None:
                # The empty DN is the placeholder that keeps a holderless groupOfNames valid: no member.
                raw_members[entry.idx] = [
                    value
                    for name, member_values in raw.items()
                    if directory.attribute_key(name) == member_key
                    for value in member_values
                    if value.strip()
                ]
        report(f"{kind} groups", sum(1 for i in raw_members if builder.entries[i].kind == kind))
    return raw_members


def _resolve_members(
    directory, builder: _Builder, raw: dict[int, list[bytes]], report: Progress
) -> dict[int, tuple[int, ...]]:
    unknown: dict[bytes, int] = {}
    members: dict[int, tuple[int, ...]] = {}
    lookup = builder.by_raw.get
    for group_idx, values in raw.items():
        resolved = [lookup(value) for value in values]
        if None in resolved:
            resolved = [
                idx if idx is not None else _resolve_one(directory, builder, unknown, value)
                for idx, value in zip(resolved, values, strict=True)
            ]
        members[group_idx] = tuple(resolved)
    report("unresolved member values", len(unknown))
    return members


def _resolve_one(directory, builder: _Builder, unknown: dict[bytes, int], value: bytes) -> int:
    idx = builder.lookup(value)
    if idx is None:
        idx = unknown.get(value)
    if idx is None:
        idx = unknown[value] = _classify_unknown(directory, builder, value.decode("utf-8", "replace"))
    return idx


def _classify_unknown(directory, builder: _Builder, value: str) -> int:
    """A member value outside the managed entries: an existing entry elsewhere, or dangling."""
    exists = "=" in value and directory.resolves(value)
    kind = EXTERNAL if exists else DANGLING
    entry = builder.add(kind, value, value)
    return entry.idx if entry is not None else builder.by_norm[dnutil.normalize(value)]


def take_snapshot(settings: Settings, store, progress=None, prompt=None) -> Snapshot:
    """Read the directory and store one immutable snapshot."""
    from .connections import directory_for

    with directory_for(settings, prompt) as directory:
        snap = take(directory, settings, progress)
    store.save_snapshot(snap)
    return snap
