"""The role catalogue in the store: definitions and their history (the batches are in the journal)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, delete, false, select, update
from sqlalchemy.engine import Connection

from .. import dn as dnutil
from ..audit import operator
from ..model import ACTIVE, DANGLING, EXTERNAL, USER, RoleDefinition, RoleEvent, RoleUpdate
from .schema import entry_versions, joiner_proposals, role_definitions, role_history, role_rules
from .snapshots import valid_at

if TYPE_CHECKING:
    from . import Store


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


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

    def set_rule(self, role_name: str, role_dn: str, attrs: Mapping[str, str]) -> None:
        """Give a role its assignment rule, replacing any earlier one."""
        key = dnutil.normalize(role_dn)
        values = {"role_name": role_name, "attrs": _json(dict(attrs)), "operator": operator(), "updated_at": _now()}
        with self.store.begin() as conn:
            conn.execute(delete(role_rules).where(role_rules.c.role_dn == key))
            conn.execute(role_rules.insert().values(role_dn=key, **values))

    def remove_rule(self, role_dn: str) -> bool:
        with self.store.begin() as conn:
            gone = conn.execute(delete(role_rules).where(role_rules.c.role_dn == dnutil.normalize(role_dn)))
        return bool(gone.rowcount)

    def rules(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Every assignment rule: normalised role DN -> (role name, attribute values)."""
        with self.store.connect() as conn:
            rows = conn.execute(select(role_rules)).all()
        return {row.role_dn: (row.role_name, json.loads(row.attrs)) for row in rows}

    def rule(self, role_dn: str) -> dict[str, str] | None:
        found = self.rules().get(dnutil.normalize(role_dn))
        return found[1] if found else None

    def save_proposals(self, user_dn: str, snapshot_id: int | None, body: Mapping[str, Any]) -> int:
        """Keep proposals as shown; returns their id."""
        values = {
            "user_dn": dnutil.normalize(user_dn),
            "snapshot_id": snapshot_id,
            "operator": operator(),
            "created_at": _now(),
            "body": _json(body),
        }
        with self.store.begin() as conn:
            return conn.execute(joiner_proposals.insert().values(**values)).inserted_primary_key[0]

    def latest_proposals(self, user_dn: str) -> tuple[int, datetime, dict[str, Any]] | None:
        """The proposals last shown for this user: (id, when, body), or None."""
        table = joiner_proposals.c
        query = select(joiner_proposals).where(table.user_dn == dnutil.normalize(user_dn)).order_by(table.id.desc())
        with self.store.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return (row.id, row.created_at, json.loads(row.body)) if row is not None else None

    def record(self, updates: Sequence[RoleUpdate], ticket: str | None, batch_id: int | None) -> None:
        """Update the catalogue and its history after a verified batch: all or nothing."""
        at = _now()
        with self.store.begin() as conn:
            for update_ in updates:
                role_id = _upsert(conn, update_, at)
                for action, details in update_.events:
                    conn.execute(
                        role_history.insert().values(
                            role_id=role_id,
                            change_id=None,
                            at=at,
                            operator=operator(),
                            action=action,
                            ticket=ticket,
                            details=_json({**details, "batch": batch_id}),
                        )
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
