"""What the quick commands need from the store, in plain SQL through the database driver.

Reading snapshots (entries, members, peers), reading the role catalogue and its assignment
rules, and keeping joiner proposals as shown. The SQLAlchemy store and the lean one
(``driver.DriverStore``, which ``access``, ``joiner propose`` and ``snapshot take`` use once the
store is up to date, so they need not import SQLAlchemy) both go through these functions, on the
driver connection each holds: one implementation, at driver speed, whichever store asks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from .. import dn as dnutil
from ..audit import operator
from ..kinds import DANGLING, EXTERNAL, GROUP_KINDS, USER
from ..model import ACTIVE, Entry, RoleDefinition, Snapshot
from .driver import Db, aware
from .packing import unpack
from .snapshot_writer import attrs_text

ENTRY_COLUMNS = "entity, kind, dn, name, uuid, enabled, CAST(attrs AS TEXT)"


def _valid_at(db: Db, snapshot_id: int) -> tuple[str, tuple]:
    """The condition selecting the versions a snapshot holds, with its parameters: the current
    versions for the latest snapshot, which an index narrows to."""
    if snapshot_id == db.scalar("SELECT max(id) FROM snapshots"):
        return "until IS NULL", ()
    return "since <= ? AND (until IS NULL OR until > ?)", (snapshot_id, snapshot_id)


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")"


def load(db: Db, snapshot_id: int, kinds: tuple[str, ...] | None = None) -> Snapshot:
    """A snapshot: every entry, or only entries of ``kinds`` plus every group; each group's members.

    Entries come in entity order; peers sharing attributes share one mapping.
    """
    taken_at, source, flavour, bases = db.rows(
        "SELECT taken_at, source, flavour, bases FROM snapshots WHERE id = ?", (snapshot_id,)
    )[0]
    valid, params = _valid_at(db, snapshot_id)
    sql = f"SELECT {ENTRY_COLUMNS}, members FROM entry_versions WHERE {valid}"
    if kinds is not None:
        chosen = sorted(set(kinds) | set(GROUP_KINDS))
        sql, params = f"{sql} AND kind IN {_in(chosen)}", (*params, *chosen)
    decoded: dict[str | None, dict] = {None: {}}
    entries, members = [], {}
    for idx, kind, dn, name, uuid, enabled, attrs, packed in db.rows(f"{sql} ORDER BY entity", params):
        found = decoded.get(attrs)
        if found is None:
            found = decoded[attrs] = json.loads(attrs) or {}
        entries.append(Entry(idx, kind, dn, name, uuid, bool(enabled), found))
        if kind in GROUP_KINDS:
            members[idx] = unpack(packed)
    return Snapshot(
        taken_at=aware(taken_at),
        source=source,
        flavour=flavour,
        bases=json.loads(bases) if isinstance(bases, str) else bases,
        entries=entries,
        members=members,
        id=snapshot_id,
    )


def find_entries(db: Db, snapshot_id: int, name_or_dn: str, kinds: Sequence[str]) -> list[Entry]:
    """Entries of the given kinds whose name or DN matches (case-insensitively)."""
    if "=" in name_or_dn:
        column, key = "dn_norm", dnutil.normalize(name_or_dn)
    else:
        column, key = "name_norm", name_or_dn.strip().lower()
    valid, params = _valid_at(db, snapshot_id)
    kinds = tuple(kinds)
    sql = f"SELECT {ENTRY_COLUMNS} FROM entry_versions WHERE {column} = ? AND kind IN {_in(kinds)} AND {valid}"
    rows = db.rows(f"{sql} ORDER BY entity", (key, *kinds, *params))
    return [
        Entry(idx, kind, dn, name, uuid, bool(enabled), json.loads(attrs) if attrs else {})
        for idx, kind, dn, name, uuid, enabled, attrs in rows
    ]


def not_users_and_disabled(db: Db, snapshot_id: int) -> tuple[frozenset[int], frozenset[int]]:
    """Indexes of a snapshot's entries that are neither users nor groups, and of its disabled users.

    Both are few next to the users themselves, and both are index look-ups, not a scan.
    """
    valid, params = _valid_at(db, snapshot_id)
    others = db.rows(
        f"SELECT entity FROM entry_versions WHERE kind IN (?, ?) AND {valid}", (EXTERNAL, DANGLING, *params)
    )
    disabled = db.rows(
        f"SELECT entity FROM entry_versions WHERE kind = ? AND enabled = ? AND {valid}", (USER, False, *params)
    )
    return frozenset(row[0] for row in others), frozenset(row[0] for row in disabled)


def find_peers(db: Db, snapshot_id: int, attrs: Mapping[str, str]) -> list[int]:
    """Indexes of the enabled users whose peer attributes are exactly these.

    Entries keep their attributes as compact JSON in configured order, so equal attributes are
    equal text, found through an index on that text; no JSON is parsed.
    """
    text = attrs_text(attrs, {})  # the form the snapshot writer stores
    if text is None:
        return []
    # Only the attribute text in the condition, so that the planner takes its index.
    rows = db.rows(
        "SELECT entity, kind, enabled, since, until FROM entry_versions WHERE CAST(attrs AS TEXT) = ?", (text,)
    )
    return [
        idx
        for idx, kind, enabled, since, until in rows
        if kind == USER and enabled and since <= snapshot_id and (until is None or until > snapshot_id)
    ]


# -- the role catalogue ----------------------------------------------------------------------------


def definitions(db: Db, include_deleted: bool = False) -> list[RoleDefinition]:
    """Role definitions by name (the active ones, unless ``include_deleted``)."""
    sql = "SELECT id, name, dn, description, grants, state, created_at, updated_at FROM role_definitions"
    params: tuple = ()
    if not include_deleted:
        sql, params = f"{sql} WHERE state = ?", (ACTIVE,)
    return [
        RoleDefinition(
            id=row[0],
            name=row[1],
            dn=row[2],
            description=row[3],
            grants=tuple(json.loads(row[4])),
            state=row[5],
            created_at=aware(row[6]),
            updated_at=aware(row[7]),
        )
        for row in db.rows(f"{sql} ORDER BY name_norm, id", params)
    ]


def rules(db: Db) -> dict[str, tuple[str, dict[str, str]]]:
    """Every assignment rule: normalised role DN -> (role name, attribute values)."""
    return {
        dn: (name, json.loads(attrs)) for dn, name, attrs in db.rows("SELECT role_dn, role_name, attrs FROM role_rules")
    }


def save_proposals(db: Db, user_dn: str, snapshot_id: int | None, body: Mapping[str, Any]) -> int:
    """Keep joiner proposals as shown; returns their id. The caller commits."""
    values = (dnutil.normalize(user_dn), snapshot_id, operator(), db.stamp(datetime.now(timezone.utc)), as_json(body))
    names = "user_dn, snapshot_id, operator, created_at, body"
    return db.insert_returning_id(f"INSERT INTO joiner_proposals ({names}) VALUES (?, ?, ?, ?, ?)", values)


def as_json(value: Any) -> str:
    """A value as the store keeps JSON text: keys sorted, so equal values are equal text."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
