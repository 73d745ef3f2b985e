"""What changed between two snapshots: pure, keyed by identity (entryUUID / objectGUID)."""

from __future__ import annotations

from dataclasses import dataclass

from .model import GROUP_KINDS, USER, Entry, Snapshot, identity_key


@dataclass(frozen=True, order=True)
class Change:
    """One difference between snapshots A and B."""

    change: str  # user added | user removed | user disabled | user enabled | user moved | user renamed | ...
    subject: str
    group: str = ""
    detail: str = ""


def _key(entry: Entry) -> str:
    return identity_key(entry.uuid, entry.dn)


def _memberships(snap: Snapshot) -> dict[tuple[str, str], tuple[Entry, Entry]]:
    by_idx = {e.idx: e for e in snap.entries}
    pairs = {}
    for group_idx, members in snap.members.items():
        group = by_idx[group_idx]
        for member_idx in members:
            member = by_idx[member_idx]
            pairs[(_key(member), _key(group))] = (member, group)
    return pairs


def diff(a: Snapshot, b: Snapshot) -> list[Change]:
    """Users added, removed, disabled, moved or renamed; groups added or removed; grants added or removed."""
    changes: list[Change] = []
    for kinds, label in (((USER,), "user"), (GROUP_KINDS, "group")):
        before = {_key(e): e for e in a.entries if e.kind in kinds}
        after = {_key(e): e for e in b.entries if e.kind in kinds}
        changes += [Change(f"{label} added", e.name, detail=e.dn) for k, e in after.items() if k not in before]
        changes += [Change(f"{label} removed", e.name, detail=e.dn) for k, e in before.items() if k not in after]
        for key in before.keys() & after.keys():
            changes += _entry_changes(label, before[key], after[key])
    old, new = _memberships(a), _memberships(b)
    for key in new.keys() - old.keys():
        member, group = new[key]
        changes.append(Change("member added", member.name, group.name, member.dn))
    for key in old.keys() - new.keys():
        member, group = old[key]
        changes.append(Change("member removed", member.name, group.name, member.dn))
    return sorted(changes)


def _entry_changes(label: str, old: Entry, new: Entry) -> list[Change]:
    out = []
    if old.dn.lower() != new.dn.lower():
        out.append(Change(f"{label} renamed", new.name, detail=f"{old.dn} → {new.dn}"))
    if old.enabled and not new.enabled:
        out.append(Change("user disabled", new.name, detail=new.dn))
    if not old.enabled and new.enabled:
        out.append(Change("user enabled", new.name, detail=new.dn))
    if dict(old.attrs) != dict(new.attrs):
        moved = ", ".join(
            f"{k}: {old.attrs.get(k, '')} → {new.attrs.get(k, '')}"
            for k in sorted(set(old.attrs) | set(new.attrs))
            if old.attrs.get(k) != new.attrs.get(k)
        )
        out.append(Change("user moved", new.name, detail=moved))
    return out
