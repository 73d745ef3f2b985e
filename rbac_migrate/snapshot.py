"""Take a snapshot: read users and managed groups from the directory into plain data.

A full read searches every user and managed group. An incremental read asks the server what
changed since the state the latest snapshot recorded (RFC 4533 Content Sync on OpenLDAP,
``uSNChanged`` on Active Directory) and applies that to the latest snapshot; member values are
then resolved exactly as a full read resolves them, so both give the same snapshot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from . import dn as dnutil
from .config import Settings
from .errors import ConfigError
from .model import DANGLING, EXTERNAL, GRANT, ROLE, USER, Entry, Snapshot

if TYPE_CHECKING:
    from .changes import Change
    from .directory.sync import Changes, Search
    from .store import Store

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
    """Collects entries and resolves member values to them.

    ``ids`` numbers entries by identity as the store does, so a snapshot needs no renumbering
    when it is written; without it entries are numbered in the order they arrive.
    """

    def __init__(self, ids: Callable[[str], int] | None = None) -> None:
        self.entries: list[Entry] = []
        self.by_raw: dict[bytes, int] = {}
        self.by_norm: dict[str, int] = {}
        self.ids = ids

    def add(self, kind: str, dn: str, name: str, norm: str | None = None, **fields) -> Entry | None:
        norm = norm or dnutil.normalize(dn)
        if norm in self.by_norm:
            return None
        uuid = fields.get("uuid")
        idx = self.ids(uuid or f"dn:{norm}") if self.ids is not None else len(self.entries)
        entry = Entry(idx=idx, kind=kind, dn=dn, name=name, **fields)
        self.entries.append(entry)
        # Member values almost always repeat the DN byte for byte: match raw bytes first.
        self.by_raw[dn.encode("utf-8")] = idx
        self.by_norm[norm] = idx
        return entry

    def lookup(self, value: bytes) -> int | None:
        found = self.by_raw.get(value)
        if found is None:
            found = self.by_norm.get(dnutil.normalize(value.decode("utf-8", "replace")))
        return found


def searches(settings: Settings) -> list[Search]:
    """The searches a snapshot is made of: users, then role and grant groups, the more specific base first."""
    from .directory.sync import Search

    uuid = identity_attribute(settings)
    users = Search(
        USER,
        settings.user_base,
        as_filter(settings.user_filter, "user_filter"),
        (uuid, settings.id_attribute, *settings.peer_attributes),
    )
    groups = sorted(
        [(settings.role_base, ROLE), (settings.grant_base, GRANT)], key=lambda item: -len(dnutil.normalize(item[0]))
    )
    attributes = (uuid, "cn", settings.member_attribute)
    return [users, *(Search(kind, base, GROUP_FILTER, attributes) for base, kind in groups)]


class _Reader:
    """Turns raw search results into entries of a builder."""

    def __init__(self, directory, settings: Settings, builder: _Builder) -> None:
        self.directory, self.settings, self.builder = directory, settings, builder
        self.uuid_key = identity_attribute(settings).lower()
        self.id_key = settings.id_attribute.lower()
        self.peers = [(name, name.lower()) for name in settings.peer_attributes]
        self.member_key = settings.member_attribute.lower()
        self.keys_cache: dict = {}
        self.shared_attrs: dict[tuple, dict[str, str]] = {}  # peers share one mapping: far fewer objects
        user_filter = as_filter(settings.user_filter, "user_filter")
        disabled_filter = as_filter(settings.disabled_filter, "disabled_filter")
        self.disabled = {
            dnutil.normalize(dn)
            for dn, _ in directory.search_raw(settings.user_base, f"(&{user_filter}{disabled_filter})", ["1.1"])
        }
        self.raw_members: dict[int, list[bytes]] = {}

    def uuid_of(self, raw: dict[str, list[bytes]]) -> str | None:
        return self.directory.first_values(raw, self.keys_cache).get(self.uuid_key)

    def user(self, dn: str, raw: dict[str, list[bytes]]) -> None:
        values = self.directory.first_values(raw, self.keys_cache)
        peer_values = tuple(values.get(key) for _label, key in self.peers)
        attrs = self.shared_attrs.get(peer_values)
        if attrs is None:
            attrs = self.shared_attrs[peer_values] = {
                label: value for (label, _key), value in zip(self.peers, peer_values, strict=True) if value is not None
            }
        norm = dnutil.normalize(dn)
        name = values.get(self.id_key) or dnutil.first_value(dn)
        uuid = values.get(self.uuid_key)
        self.builder.add(USER, dn, name, norm=norm, uuid=uuid, enabled=norm not in self.disabled, attrs=attrs)

    def known_user(self, entry: Entry) -> None:
        """A user unchanged since the previous snapshot; only whether it is disabled is read again."""
        norm = dnutil.normalize(entry.dn)
        enabled = norm not in self.disabled
        self.builder.add(USER, entry.dn, entry.name, norm=norm, uuid=entry.uuid, enabled=enabled, attrs=entry.attrs)

    def group(self, kind: str, dn: str, raw: dict[str, list[bytes]]) -> None:
        values = self.directory.first_values(raw, self.keys_cache)
        name = values.get("cn") or dnutil.first_value(dn)
        entry = self.builder.add(kind, dn, name, uuid=values.get(self.uuid_key))
        if entry is not None:
            # The empty DN is the placeholder that keeps a holderless groupOfNames valid: no member.
            self.raw_members[entry.idx] = [
                value
                for name, member_values in raw.items()
                if self.directory.attribute_key(name) == self.member_key
                for value in member_values
                if value.strip()
            ]

    def known_group(self, entry: Entry, member_values: list[bytes]) -> None:
        """A group unchanged since the previous snapshot, with its member values as they were."""
        added = self.builder.add(entry.kind, entry.dn, entry.name, uuid=entry.uuid)
        if added is not None:
            self.raw_members[added.idx] = member_values


def take(directory, settings: Settings, progress: Progress | None = None, ids=None) -> Snapshot:
    """Read users, grant groups and role groups; resolve every member value."""
    report = _start(directory, settings, progress)
    taken_at = datetime.now(timezone.utc)
    reader = _Reader(directory, settings, _Builder(ids))
    users, *groups = searches(settings)
    count = 0
    for dn, raw in directory.search_raw(users.base, users.filter, users.attributes):
        reader.user(dn, raw)
        count += 1
        if count % 10000 == 0:
            report("users", count)
    report("users", count)
    for search in groups:
        for dn, raw in directory.search_raw(search.base, search.filter, search.attributes):
            reader.group(search.name, dn, raw)
        report(f"{search.name} groups", sum(1 for e in reader.builder.entries if e.kind == search.name))
    return _finish(directory, settings, reader, taken_at, report)


def _start(directory, settings: Settings, progress: Progress | None) -> Progress:
    settings.require("user_base", "grant_base", "role_base")
    for name in ("user_base", "grant_base", "role_base"):
        directory.check_base(name, getattr(settings, name))
    return progress or (lambda _stage, _count: None)


def _finish(directory, settings: Settings, reader: _Reader, taken_at: datetime, report: Progress) -> Snapshot:
    members = _resolve_members(directory, reader.builder, reader.raw_members, report)
    return Snapshot(
        taken_at=taken_at,
        source=directory.target,
        flavour=settings.flavour,
        bases={k: getattr(settings, k) for k in ("user_base", "grant_base", "role_base")},
        entries=reader.builder.entries,
        members=members,
    )


def apply_changes(
    directory, settings: Settings, previous: Snapshot, changes: Changes, progress: Progress | None = None, ids=None
) -> Snapshot:
    """The previous snapshot with what changed since applied; member values resolved as a full read does."""
    report = _start(directory, settings, progress)
    taken_at = datetime.now(timezone.utc)
    reader = _Reader(directory, settings, _Builder(ids))
    users, *groups = searches(settings)
    _reread_holders(directory, previous, changes, reader, groups)
    kept = _unchanged(previous, changes, reader)
    for entry in kept.get(USER, ()):
        reader.known_user(entry)
    for dn, raw in changes.entries[users.name]:
        reader.user(dn, raw)
    values = {e.idx: e.dn.encode("utf-8") for e in previous.entries}
    for search in groups:
        for entry in kept.get(search.name, ()):
            reader.known_group(entry, [values[m] for m in previous.members.get(entry.idx, ())])
        for dn, raw in changes.entries[search.name]:
            reader.group(search.name, dn, raw)
    report("changed entries", changes.changed)
    return _finish(directory, settings, reader, taken_at, report)


def _reread_holders(directory, previous: Snapshot, changes: Changes, reader: _Reader, groups: list[Search]) -> None:
    """Read again the groups that held an entry now renamed or gone.

    The directory rewrites their member values itself (AD's linked attributes, slapd's refint),
    and neither Content Sync's session log nor uSNChanged reports those rewrites.
    """
    before = {e.uuid: e for e in previous.entries if e.uuid}
    moved = set()
    for entries in changes.entries.values():
        for dn, raw in entries:
            old = before.get(reader.uuid_of(raw))
            if old is not None and dnutil.normalize(old.dn) != dnutil.normalize(dn):
                moved.add(old.idx)
    for kind, deleted in changes.deleted.items():
        present = changes.present.get(kind)
        moved |= {
            e.idx
            for e in previous.entries
            if e.kind == kind and (e.uuid in deleted or (present is not None and e.uuid not in present))
        }
    if not moved:
        return
    changed = {reader.uuid_of(raw) for entries in changes.entries.values() for _dn, raw in entries}
    by_idx = {e.idx: e for e in previous.entries}
    for group_idx, members in previous.members.items():
        group = by_idx[group_idx]
        if group.uuid in changed or moved.isdisjoint(members):
            continue
        search = next(s for s in groups if s.name == group.kind)
        found = list(directory.search_raw(group.dn, search.filter, search.attributes, scope="base", paged=False))
        changes.entries[group.kind].extend(found)


def gone(previous: Snapshot, changes: Changes) -> set[int]:
    """Entries of the previous snapshot that the server says are deleted, or no longer lists."""
    found = set()
    for entry in previous.entries:
        present = changes.present.get(entry.kind)
        if entry.uuid in changes.deleted.get(entry.kind, ()) or (present is not None and entry.uuid not in present):
            found.add(entry.idx)
    return found


def _unchanged(previous: Snapshot, changes: Changes, reader: _Reader) -> dict[str, list[Entry]]:
    """Entries of the previous snapshot that are neither gone nor changed, by kind."""
    changed = {reader.uuid_of(raw) for entries in changes.entries.values() for _dn, raw in entries}
    removed = gone(previous, changes)
    kept: dict[str, list[Entry]] = {}
    for entry in previous.entries:
        # Dangling and external entries are found again from the member values.
        if entry.kind in changes.entries and entry.uuid not in changed and entry.idx not in removed:
            kept.setdefault(entry.kind, []).append(entry)
    return kept


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


# -- reading into the store ----------------------------------------------------------------------


@dataclass
class Read:
    """A snapshot read from the directory, how it was read, and what the next incremental read starts from."""

    snapshot: Snapshot
    description: str
    sync: dict | None
    incremental: Snapshot | None = None  # with --full: what an incremental read gave, to compare


def _fingerprint(settings: Settings, target: str) -> str:
    """Which server and which searches a sync state belongs to: other settings need a full read."""
    fields = [target, settings.flavour, settings.disabled_filter, settings.member_attribute]
    fields += [f"{s.base}|{s.filter}|{','.join(s.attributes)}" for s in searches(settings)]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]


def read(directory, settings: Settings, store: Store, progress: Progress | None = None, full: bool = False) -> Read:
    """Read incrementally when the store has a state the server can resume from, else everything."""
    from .directory import sync

    _start(directory, settings, progress)  # a missing base is named before any sync search fails on it
    method = sync.offered(directory)
    fingerprint = _fingerprint(settings, directory.target)
    state, reason = _previous_state(store, method, fingerprint)
    incremental = None
    if state is not None:
        changes = sync.read_changes(directory, state, searches(settings))
        if changes is None:
            reason = "the server can no longer resume from the last snapshot's sync state"
        else:
            previous = store.load_snapshot()
            removed = len(gone(previous, changes))
            snap = apply_changes(directory, settings, previous, changes, progress, store.entity_ids())
            text = f"incremental ({changes.label}): {changes.changed} entries changed"
            text += f", {removed} gone" if removed else ""
            if not full:
                return Read(snap, text, {**changes.state, "fingerprint": fingerprint})
            incremental, reason = snap, "--full asked for"
    next_state = sync.start(directory, method, searches(settings)) if method else None
    snap = take(directory, settings, progress, store.entity_ids())
    return Read(snap, f"full read: {reason}", next_state and {**next_state, "fingerprint": fingerprint}, incremental)


def _previous_state(store: Store, method: str | None, fingerprint: str) -> tuple[dict | None, str]:
    if not store.snapshots():
        return None, "first snapshot"
    if method is None:
        return None, "the server offers no incremental read (no syncprov overlay, not Active Directory)"
    state = store.sync_state()
    if state is None:
        return None, "the last snapshot recorded no sync state"
    if state.get("fingerprint") != fingerprint or state.get("method") != method:
        return None, "the server or the searches changed since the last snapshot"
    return state, ""


def refresh(settings: Settings, store: Store, progress=None, prompt=None, always: bool = False) -> tuple[Snapshot, str]:
    """A fresh snapshot, read incrementally where possible; with the one-line description of the read.

    When nothing changed since the latest snapshot, that snapshot is returned and nothing is
    written, unless ``always``.
    """
    from .connections import directory_for

    with directory_for(settings, prompt) as directory:
        found = read(directory, settings, store, progress)
    snap = found.snapshot
    if store.save_snapshot(snap, found.sync, skip_unchanged=not always) is None:
        latest = store.snapshot_info()
        snap.id, snap.taken_at = latest.id, latest.taken_at
        return snap, f"{found.description}; nothing changed since snapshot {latest.id}"
    return snap, found.description


def take_full(
    settings: Settings, store: Store, progress=None, prompt=None
) -> tuple[Snapshot, str, list[Change] | None]:
    """A full read, saved; with what differs from an incremental read of the same moment (None without one)."""
    from . import changes
    from .connections import directory_for

    with directory_for(settings, prompt) as directory:
        found = read(directory, settings, store, progress, full=True)
    store.save_snapshot(found.snapshot, found.sync)
    differences = None if found.incremental is None else changes.diff(found.incremental, found.snapshot)
    return found.snapshot, found.description, differences


def take_snapshot(settings: Settings, store: Store, progress=None, prompt=None) -> Snapshot:
    """Read the directory and store one snapshot (incrementally where the server offers it)."""
    return refresh(settings, store, progress, prompt, always=True)[0]
