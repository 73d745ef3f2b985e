"""Migration plans: move users from direct grants onto a role, as a change set built live.

Users are chosen from the latest snapshot (``candidates``); the changes themselves are always
computed against the live directory (``build``), from an intent that a plan file records and
that ``apply`` rebuilds, so a plan never writes what the directory would not produce now.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .. import changeset as cs
from .. import dn as dnutil
from ..access import MembershipGraph
from ..errors import RbacMigrateError
from ..model import GRANT, Entry
from .live import LiveView, is_grant


class PlanError(RbacMigrateError):
    """The plan cannot be made or used as asked."""


class NothingToMigrate(PlanError):
    """No user is left whose access the role covers."""


def candidates(graph: MembershipGraph, role: Entry, is_protected) -> list[Entry]:
    """Enabled, unprotected users whose access already covers the role, most explained first."""
    role_grants = graph.effective_grants(role.idx)
    scored = []
    for user in graph.snapshot.entries:
        if user.kind != "user" or not user.enabled or is_protected(user):
            continue
        groups = graph.groups_of(user.idx)
        if role.idx in groups:
            continue
        direct = {g for g in groups if graph.kind(g) == GRANT}
        covered = direct & role_grants
        if covered and role_grants <= graph.effective_grants(user.idx):
            scored.append((-len(covered), user.name.lower(), user))
    return [user for *_key, user in sorted(scored, key=lambda item: item[:2])]


def intent(role: cs.Ref, users: list[cs.Ref], allow_gain: list[str]) -> dict:
    """What a migration plan asks for, as recorded in its file and rebuilt by apply."""
    return {
        "role": {"dn": role.dn, "uuid": role.uuid, "name": role.name},
        "users": [{"dn": u.dn, "uuid": u.uuid, "name": u.name} for u in users],
        "allow_gain": sorted({a.lower() for a in allow_gain}),
    }


def build(
    view: LiveView,
    settings,
    wanted: dict,
    directory_name: str = "",
    snapshot: int | None = None,
    limit: int | None = None,
) -> cs.ChangeSet:
    """The migration change set for an intent, computed against the directory as it is now.

    With ``limit``, the intent's users are candidates: those the directory shows are already
    migrated, gone, or would gain access are skipped, and the first ``limit`` others are planned.
    """
    role = _ref(wanted.get("role"), "role")
    users = [_ref(u, "user") for u in _list(wanted.get("users"), "users")]
    allow = {str(a).lower() for a in _list(wanted.get("allow_gain", []), "allow_gain")}
    if not users:
        raise NothingToMigrate(
            f"no user to migrate onto {role.name}: 'rbac-migrate role candidates {role.name}' lists them"
        )
    _same_entry(view, role, "role")
    if not dnutil.is_within(role.dn, settings.role_base):
        raise PlanError(f"{role.dn} is not a role (it is not under the role base)")
    role_grants = view.access(role.dn)
    chosen, units = [], []
    for user in users:
        if limit is not None and len(units) >= limit:
            break
        try:
            _same_entry(view, user, "user")
            units.append(_user_unit(view, settings, role, role_grants, user, allow))
        except PlanError:
            if limit is None:
                raise
            continue
        chosen.append(user)
    if not units:
        raise NothingToMigrate(f"no user left to migrate onto {role.name}: every candidate holds it already")
    return cs.ChangeSet(
        kind="migrate",
        title=f"move {len(chosen)} users onto {role.name}",
        intent=intent(role, chosen, sorted(allow)),
        units=units,
        role=role,
        directory=directory_name,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        snapshot=snapshot,
    )


def _user_unit(
    view: LiveView, settings, role: cs.Ref, role_grants: frozenset[str], user: cs.Ref, allow: set[str]
) -> cs.Unit:
    parents = view.parents(user.dn)
    direct = sorted(p for p in parents if is_grant(settings, p))
    edits = []
    if dnutil.normalize(role.dn) not in parents:
        edits.append(cs.Edit(cs.ADD, role, user))
    kept = []
    for group in direct:
        if group in role_grants:
            edits.append(cs.Edit(cs.DELETE, _group_ref(view, group), user))
        else:
            kept.append(dnutil.first_value(group))
    if not edits:
        raise PlanError(f"{user.name} already holds {role.name} and has no direct grant it covers")
    before = view.access(user.dn)
    after = view.expected_access(user.dn, edits)
    gained, lost = after - before, before - after
    if gained and not ({user.name.lower(), dnutil.normalize(user.dn)} & allow):
        names = ", ".join(sorted(dnutil.first_value(g) for g in gained))
        raise PlanError(
            f"{user.name}: the role would add access they do not have ({names}); use --allow-gain {user.name}"
        )
    if lost:
        raise PlanError(f"{user.name}: the plan would take away {sorted(lost)}")
    return cs.Unit(user.name, edits, [cs.Subject(user, before, after)], kept)


def _group_ref(view: LiveView, group: str) -> cs.Ref:
    group_dn = view.spelled(group)
    return cs.Ref(group_dn, view.uuid_of(group_dn), dnutil.first_value(group_dn))


def _same_entry(view: LiveView, ref: cs.Ref, what: str) -> None:
    live = view.uuid_of(ref.dn)
    if live is None:
        raise PlanError(f"{what} {ref.dn} does not exist in the directory")
    if ref.uuid is None or live.lower() != ref.uuid.lower():
        raise PlanError(f"{what} {ref.dn} is not the entry the plan was made for (deleted and re-created)")


def _ref(raw, what: str) -> cs.Ref:
    if not isinstance(raw, dict) or not isinstance(raw.get("dn"), str):
        raise PlanError(f"the plan's intent names no {what}")
    uuid = raw.get("uuid")
    if uuid is not None and not isinstance(uuid, str):
        raise PlanError(f"the plan's intent has a {what} identity that is not text")
    return cs.Ref(raw["dn"], uuid, str(raw.get("name") or dnutil.first_value(raw["dn"])))


def _list(raw, what: str) -> list:
    if not isinstance(raw, list):
        raise PlanError(f"the plan's intent has no list of {what}")
    return raw


def entry_ref(entry: Entry) -> cs.Ref:
    return cs.Ref(entry.dn, entry.uuid, entry.name)


def plan_rows(changes: cs.ChangeSet) -> list[dict]:
    """One row per change, for table and CSV output."""
    rows = []
    for unit in changes.units:
        for edit in unit.edits:
            value = edit.member.dn if edit.member is not None else "(entry)"
            rows.append(
                {"user": unit.label, "change": edit.op, "group": edit.group.name or edit.group.dn, "value": value}
            )
        for kept in unit.kept:
            rows.append({"user": unit.label, "change": "keep", "group": kept, "value": "(not covered by the role)"})
    return rows


def plan_ldif(changes: cs.ChangeSet, member_attribute: str) -> str:
    """The change set's member edits as LDIF change records that ldapmodify applies value by value."""
    from ..ldif import change_record, document

    records = [
        change_record(edit.group.dn, [(edit.op, member_attribute, edit.member.dn)])
        for edit in changes.edits
        if edit.op in cs.MEMBER_OPS and edit.member is not None
    ]
    return document(records, [f"rbac-migrate: {changes.title}"])
