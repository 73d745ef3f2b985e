"""The role catalogue in the store: definitions, history, and rollback points of role commands."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, false, select, update
from sqlalchemy.engine import Connection

from .. import dn as dnutil
from ..audit import AuditRecord, operator
from ..model import ACTIVE, DANGLING, EXTERNAL, USER, RoleDefinition, RoleEvent, RoleUpdate
from . import audit as audit_store
from .schema import entry_versions, role_change_groups, role_changes, role_definitions, role_history
from .snapshots import valid_at

if TYPE_CHECKING:
    from . import Store

PENDING, DONE, FAILED = "pending", "done", "failed"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


@dataclass(frozen=True)
class GroupPrior:
    """A group a role command touches: its member values just before the first write."""

    group_dn: str
    existed: bool
    prior_members: tuple[str, ...]
    changes: tuple[tuple[str, str], ...]  # (op, value); op is add, delete, create or remove


@dataclass(frozen=True)
class RoleChange:
    """A role command's rollback point, as stored."""

    id: int
    action: str
    role_dn: str
    operator: str
    ticket: str | None
    state: str
    created_at: datetime
    message: str | None
    groups: tuple[GroupPrior, ...]


class RoleStore:
    """Role catalogue queries and updates over one store (``Store.roles``)."""

    def __init__(self, store: Store):
        self.store = store

    def definitions(self, include_deleted: bool = False) -> list[RoleDefinition]:
        query = select(role_definitions).order_by(role_definitions.c.name_norm, role_definitions.c.id)
        if not include_deleted:
            query = query.where(role_definitions.c.state == ACTIVE)
        with self.store.connect() as conn:
            return [_definition(row) for row in conn.execute(query).all()]

    def find(self, name_or_dn: str) -> RoleDefinition | None:
        """The active definition named by cn or DN, or None."""
        key = dnutil.normalize(name_or_dn) if "=" in name_or_dn else name_or_dn.strip().lower()
        for definition in self.definitions():
            if key in (dnutil.normalize(definition.dn), definition.name.lower()):
                return definition
        return None

    def history(self, role_id: int) -> list[RoleEvent]:
        query = select(role_history).where(role_history.c.role_id == role_id).order_by(role_history.c.id)
        with self.store.connect() as conn:
            return [
                RoleEvent(row.at, row.operator, row.action, row.ticket, json.loads(row.details), row.change_id)
                for row in conn.execute(query).all()
            ]

    def begin_change(self, action: str, role_dn: str, ticket: str | None, groups: Sequence[GroupPrior]) -> int:
        """Write the rollback point, committed before the directory is touched."""
        with self.store.begin() as conn:
            change_id = conn.execute(
                role_changes.insert().values(
                    action=action,
                    role_dn=role_dn,
                    operator=operator(),
                    ticket=ticket,
                    state=PENDING,
                    created_at=_now(),
                )
            ).inserted_primary_key[0]
            for position, group in enumerate(groups):
                conn.execute(
                    role_change_groups.insert().values(
                        change_id=change_id,
                        position=position,
                        group_dn=group.group_dn,
                        existed=group.existed,
                        prior_members=_json(list(group.prior_members)),
                        changes=_json([list(c) for c in group.changes]),
                    )
                )
        return change_id

    def fail_change(self, change_id: int, message: str) -> None:
        with self.store.begin() as conn:
            _set_state(conn, change_id, FAILED, message)

    def finish_change(
        self, change_id: int, ticket: str | None, updates: Sequence[RoleUpdate], records: Sequence[AuditRecord]
    ) -> None:
        """Mark the change done, update the catalogue and its history, and audit: all or nothing."""
        at = _now()
        with self.store.begin() as conn:
            _set_state(conn, change_id, DONE, None)
            for update_ in updates:
                role_id = _upsert(conn, update_, at)
                for action, details in update_.events:
                    conn.execute(
                        role_history.insert().values(
                            role_id=role_id,
                            change_id=change_id,
                            at=at,
                            operator=operator(),
                            action=action,
                            ticket=ticket,
                            details=_json(details),
                        )
                    )
            audit_store.append(conn, list(records))

    def change(self, change_id: int) -> RoleChange | None:
        with self.store.connect() as conn:
            row = conn.execute(select(role_changes).where(role_changes.c.id == change_id)).first()
            if row is None:
                return None
            groups = conn.execute(
                select(role_change_groups)
                .where(role_change_groups.c.change_id == change_id)
                .order_by(role_change_groups.c.position)
            ).all()
        return RoleChange(
            row.id,
            row.action,
            row.role_dn,
            row.operator,
            row.ticket,
            row.state,
            row.created_at,
            row.message,
            tuple(
                GroupPrior(
                    g.group_dn,
                    bool(g.existed),
                    tuple(json.loads(g.prior_members)),
                    tuple(tuple(c) for c in json.loads(g.changes)),
                )
                for g in groups
            ),
        )


def _set_state(conn: Connection, change_id: int, state: str, message: str | None) -> None:
    conn.execute(
        update(role_changes)
        .where(role_changes.c.id == change_id)
        .values(state=state, message=message, finished_at=_now())
    )


def _upsert(conn: Connection, role: RoleUpdate, at: datetime) -> int:
    """The active definition at this DN updated (or a new one); returns its id."""
    key = dnutil.normalize(role.dn)
    rows = conn.execute(select(role_definitions).where(role_definitions.c.state == ACTIVE)).all()
    existing = next((row for row in rows if dnutil.normalize(row.dn) == key), None)
    values = {"grants": _json(list(role.grants)), "state": role.state, "updated_at": at}
    if role.description is not None:
        values["description"] = role.description
    if existing is not None:
        conn.execute(update(role_definitions).where(role_definitions.c.id == existing.id).values(**values))
        return existing.id
    names = {"name": role.name, "name_norm": role.name.lower(), "dn": role.dn, "created_at": at}
    inserted = conn.execute(role_definitions.insert().values(**names, **values))
    return inserted.inserted_primary_key[0]


def _definition(row) -> RoleDefinition:
    return RoleDefinition(
        id=row.id,
        name=row.name,
        dn=row.dn,
        description=row.description,
        grants=tuple(json.loads(row.grants)),
        state=row.state,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def not_users_and_disabled(conn: Connection, snapshot_id: int) -> tuple[frozenset[int], frozenset[int]]:
    """Indexes of a snapshot's entries that are neither users nor groups, and of its disabled users.

    Both are few next to the users themselves, and both are index look-ups, not a scan.
    """
    entries = entry_versions.c
    held = valid_at(snapshot_id)
    others = select(entries.entity).where(held, entries.kind.in_((EXTERNAL, DANGLING)))
    disabled = select(entries.entity).where(held, entries.enabled == false(), entries.kind == USER)
    return frozenset(conn.execute(others).scalars()), frozenset(conn.execute(disabled).scalars())


def find_peers(conn: Connection, snapshot_id: int, attrs: Mapping[str, str]) -> list[int]:
    """Indexes of the enabled users whose peer attributes are exactly these.

    Entries keep their attributes as compact JSON in configured order, so equal attributes are
    equal text, found through an index on that text; no JSON is parsed.
    """
    if not attrs:
        return []
    text = json.dumps(dict(attrs), separators=(",", ":"))
    entries = entry_versions.c
    # Only the attribute text in the condition, so that the planner takes its index.
    query = select(entries.entity, entries.kind, entries.enabled, entries.since, entries.until).where(
        cast(entries.attrs, Text) == text
    )
    return [
        idx
        for idx, kind, enabled, since, until in conn.execute(query).all()
        if kind == USER and enabled and since <= snapshot_id and (until is None or until > snapshot_id)
    ]
