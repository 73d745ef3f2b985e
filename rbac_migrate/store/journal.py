"""The change journal and operator locks: written before the directory, read back after a crash."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import RbacMigrateError
from ..model import Batch, BatchUser, Step, SubjectAccess
from .schema import batch_steps, batch_users, batches, locks, plans


class LockedError(RbacMigrateError):
    """Another operator holds the lock."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_alive(holder: str | None) -> bool:
    """Whether the process named by 'host:pid' still runs (other hosts are assumed alive)."""
    if not holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def acquire_lock(conn: Connection, name: str, holder: str) -> None:
    """Take the named lock, or take it over from a process that died; else LockedError."""
    try:
        with conn.begin_nested():
            conn.execute(locks.insert().values(name=name, holder=holder, since=now()))
        return
    except IntegrityError:
        pass
    row = conn.execute(select(locks).where(locks.c.name == name)).one()
    if holder_alive(row.holder) and row.holder != holder:
        raise LockedError(
            f"another operator ({row.holder}) has been running a {name} since "
            f"{row.since:%Y-%m-%d %H:%M:%S}: wait for it to finish"
        )
    # Compare-and-swap, so two processes noticing the same dead holder cannot both win.
    taken = conn.execute(
        update(locks).where(locks.c.name == name, locks.c.holder == row.holder).values(holder=holder, since=now())
    )
    if taken.rowcount != 1:
        raise LockedError(f"another operator took the {name} lock just now: try again")


def release_lock(conn: Connection, name: str, holder: str) -> None:
    conn.execute(locks.delete().where(locks.c.name == name, locks.c.holder == holder))


def create_batch(
    conn: Connection,
    *,
    kind: str,
    plan: dict,
    role_dn: str | None,
    role_uuid: str | None,
    operator: str,
    ticket: str | None,
    holder: str,
    users: Iterable[BatchUser],
    steps: Iterable[Step],
) -> int:
    """Write the batch, its users with their prior access and every step, all 'pending'."""
    batch_id = conn.execute(
        batches.insert().values(
            kind=kind,
            role_dn=role_dn,
            role_uuid=role_uuid,
            status="running",
            operator=operator,
            ticket=ticket,
            created_at=now(),
            holder=holder,
            plan=json.dumps(plan, sort_keys=True),
        )
    ).inserted_primary_key[0]
    user_rows = [
        {
            "batch_id": batch_id,
            "position": u.position,
            "user_dn": u.user_dn,
            "user_uuid": u.user_uuid,
            "state": u.state,
            "before_access": json.dumps(sorted(u.before_access)),
            "subjects": json.dumps([_subject_json(s) for s in u.subjects]),
        }
        for u in users
    ]
    step_rows = [
        {
            "batch_id": batch_id,
            "seq": s.seq,
            "position": s.position,
            "op": s.op,
            "group_dn": s.group_dn,
            "group_uuid": s.group_uuid,
            "value": s.value,
            "state": s.state,
            "updated_at": now(),
            "value_uuid": s.value_uuid,
            "detail": json.dumps(s.detail) if s.detail else None,
        }
        for s in steps
    ]
    if user_rows:
        conn.execute(batch_users.insert(), user_rows)
    if step_rows:
        conn.execute(batch_steps.insert(), step_rows)
    return batch_id


def set_steps(conn: Connection, batch_id: int, seqs: Iterable[int], state: str) -> None:
    conn.execute(
        update(batch_steps)
        .where(batch_steps.c.batch_id == batch_id, batch_steps.c.seq.in_(list(seqs)))
        .values(state=state, updated_at=now())
    )


def set_user(conn: Connection, batch_id: int, position: int, state: str, message: str | None = None) -> None:
    conn.execute(
        update(batch_users)
        .where(batch_users.c.batch_id == batch_id, batch_users.c.position == position)
        .values(state=state, message=message)
    )


def set_batch(
    conn: Connection, batch_id: int, status: str, message: str | None = None, holder: str | None = None
) -> None:
    finished = None if status in ("running", "rolling_back") else now()
    conn.execute(
        update(batches)
        .where(batches.c.id == batch_id)
        .values(status=status, message=message, finished_at=finished, holder=holder)
    )


def load_batch(conn: Connection, batch_id: int) -> Batch | None:
    row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
    if row is None:
        return None
    batch = _batch(row)
    users = conn.execute(
        select(batch_users).where(batch_users.c.batch_id == batch_id).order_by(batch_users.c.position)
    ).all()
    steps = conn.execute(
        select(batch_steps).where(batch_steps.c.batch_id == batch_id).order_by(batch_steps.c.seq)
    ).all()
    batch.users = [_unit(u) for u in users]
    batch.steps = [
        Step(
            s.seq,
            s.position,
            s.op,
            s.group_dn,
            s.group_uuid,
            s.value,
            s.state,
            s.value_uuid,
            json.loads(s.detail) if s.detail else {},
        )
        for s in steps
    ]
    return batch


def _subject_json(subject: SubjectAccess) -> dict:
    return {"dn": subject.dn, "uuid": subject.uuid, "before": sorted(subject.before), "after": sorted(subject.after)}


def _unit(row) -> BatchUser:
    before = json.loads(row.before_access)
    if row.subjects is not None:
        subjects = [
            SubjectAccess(s["dn"], s["uuid"], frozenset(s["before"]), frozenset(s["after"]))
            for s in json.loads(row.subjects)
        ]
    else:  # written before units had subjects: a migrated user whose access stays as it was
        subjects = [SubjectAccess(row.user_dn, row.user_uuid, frozenset(before), frozenset(before))]
    return BatchUser(row.position, row.user_dn, row.user_uuid, before, row.state, row.message, subjects)


def add_step(conn: Connection, batch_id: int, step: Step) -> None:
    """A step the engine had to add while writing (a placeholder that keeps a group open)."""
    conn.execute(
        batch_steps.insert().values(
            batch_id=batch_id,
            seq=step.seq,
            position=step.position,
            op=step.op,
            group_dn=step.group_dn,
            group_uuid=step.group_uuid,
            value=step.value,
            state=step.state,
            updated_at=now(),
            value_uuid=step.value_uuid,
            detail=json.dumps(step.detail) if step.detail else None,
        )
    )


def set_step_uuid(conn: Connection, batch_id: int, seq: int, group_uuid: str | None) -> None:
    """Record the identity of an entry the batch created, once the server has given it one."""
    conn.execute(
        update(batch_steps)
        .where(batch_steps.c.batch_id == batch_id, batch_steps.c.seq == seq)
        .values(group_uuid=group_uuid)
    )


def record_plan(conn: Connection, digest: str, kind: str, path: str | None, operator: str) -> None:
    conn.execute(plans.insert().values(digest=digest, kind=kind, path=path, operator=operator, created_at=now()))


def find_plan(conn: Connection, digest: str):
    return conn.execute(select(plans).where(plans.c.digest == digest)).first()


def plan_applied(conn: Connection, digest: str, batch_id: int) -> None:
    conn.execute(update(plans).where(plans.c.digest == digest).values(batch_id=batch_id))


def list_batches(conn: Connection) -> list[Batch]:
    return [_batch(row) for row in conn.execute(select(batches).order_by(batches.c.id)).all()]


def _batch(row) -> Batch:
    return Batch(
        id=row.id,
        kind=row.kind,
        role_dn=row.role_dn,
        role_uuid=row.role_uuid,
        status=row.status,
        operator=row.operator,
        ticket=row.ticket,
        created_at=row.created_at,
        finished_at=row.finished_at,
        holder=row.holder,
        message=row.message,
        plan=json.loads(row.plan),
    )
