"""The role catalogue in the store: definitions and their history (the batches are in the journal)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from .. import dn as dnutil
from ..audit import operator
from ..model import ACTIVE, RoleDefinition, RoleEvent, RoleUpdate
from . import lean
from .driver import driver_of
from .schema import joiner_proposals, role_definitions, role_history, role_rules

if TYPE_CHECKING:
    from . import Store


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RoleStore:
    """Role catalogue queries and updates over one store (``Store.roles``)."""

    def __init__(self, store: Store):
        self.store = store

    def definitions(self, include_deleted: bool = False) -> list[RoleDefinition]:
        with self.store.connect() as conn:
            return lean.definitions(driver_of(conn), include_deleted)

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
        attrs_text = lean.as_json(dict(attrs))
        values = {"role_name": role_name, "attrs": attrs_text, "operator": operator(), "updated_at": _now()}
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
            return lean.rules(driver_of(conn))

    def rule(self, role_dn: str) -> dict[str, str] | None:
        found = self.rules().get(dnutil.normalize(role_dn))
        return found[1] if found else None

    def save_proposals(self, user_dn: str, snapshot_id: int | None, body: Mapping[str, Any]) -> int:
        """Keep proposals as shown; returns their id."""
        with self.store.begin() as conn:
            return lean.save_proposals(driver_of(conn), user_dn, snapshot_id, body)

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
                            details=lean.as_json({**details, "batch": batch_id}),
                        )
                    )


def _upsert(conn: Connection, role: RoleUpdate, at: datetime) -> int:
    """The active definition at this DN updated (or a new one); returns its id."""
    key = dnutil.normalize(role.dn)
    rows = conn.execute(select(role_definitions).where(role_definitions.c.state == ACTIVE)).all()
    existing = next((row for row in rows if dnutil.normalize(row.dn) == key), None)
    values = {"grants": lean.as_json(list(role.grants)), "state": role.state, "updated_at": at}
    if role.description is not None:
        values["description"] = role.description
    if existing is not None:
        conn.execute(update(role_definitions).where(role_definitions.c.id == existing.id).values(**values))
        return existing.id
    names = {"name": role.name, "name_norm": role.name.lower(), "dn": role.dn, "created_at": at}
    inserted = conn.execute(role_definitions.insert().values(**names, **values))
    return inserted.inserted_primary_key[0]
