"""Accepted exceptions: a documented reason to keep one right until a date, by identity."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from ..audit import new_record, operator
from ..errors import NotFoundError, UsageError
from ..model import GRANT, ROLE, USER, Entry, FindingException, identity_key

if TYPE_CHECKING:
    from ..store import Store


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """YYYY-MM-DD: the exception holds through that day (UTC) and ends at the next midnight."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--expires '{text}' is not a date: use YYYY-MM-DD") from None
    ends = datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc)
    if ends <= (now or datetime.now(timezone.utc)):
        raise UsageError(f"--expires {day.isoformat()} is in the past")
    return ends


def _one(store: Store, snapshot_id: int, name: str, kinds: tuple[str, ...], what: str) -> Entry:
    found = store.find_entries(snapshot_id, name, kinds)
    if not found:
        raise NotFoundError(f"no {what} '{name}' in snapshot {snapshot_id}")
    if len(found) > 1:
        raise UsageError(f"'{name}' names {len(found)} {what}s in snapshot {snapshot_id}: give the DN")
    return found[0]


def add_exception(
    store: Store, user: str, group: str, owner: str, reason: str, expires: str, ticket: str | None
) -> FindingException:
    """Accept USER keeping GROUP until a date; the user and group are found in the latest snapshot."""
    if not owner.strip() or not reason.strip():
        raise UsageError("--owner and --reason must not be empty")
    ends = parse_expiry(expires)
    snapshot_id = store.snapshot_info().id
    person = _one(store, snapshot_id, user, (USER,), "user")
    target = _one(store, snapshot_id, group, (GRANT, ROLE), "group")
    now = datetime.now(timezone.utc)
    exception = FindingException(
        id=0,
        user_key=identity_key(person.uuid, person.dn),
        user_name=person.name,
        user_dn=person.dn,
        group_key=identity_key(target.uuid, target.dn),
        group_name=target.name,
        group_dn=target.dn,
        owner=owner.strip(),
        reason=reason.strip(),
        ticket=ticket,
        expires=ends,
        created_at=now,
        created_by=operator(),
    )
    record = new_record(
        "exception.add",
        person.dn,
        ticket,
        user_key=exception.user_key,
        group=target.dn,
        group_key=exception.group_key,
        before=None,
        after={"owner": exception.owner, "reason": exception.reason, "expires": ends.isoformat()},
    )
    return store.findings.add_exception(exception, record)


def remove_exception(store: Store, exception_id: int, ticket: str | None) -> FindingException:
    """Withdraw an exception: its finding is back in the report from the next run."""
    known = {e.id: e for e in store.findings.exceptions()}
    found = known.get(exception_id)
    if found is None:
        raise NotFoundError(f"no exception {exception_id}: 'rbac-migrate exception list' shows them")
    record = new_record(
        "exception.remove",
        found.user_dn,
        ticket,
        user_key=found.user_key,
        group=found.group_dn,
        group_key=found.group_key,
        after=None,
    )
    return store.findings.remove_exception(exception_id, record)
