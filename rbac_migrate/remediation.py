"""Remediation: findings of the orphan report turned into a change set that removes them.

A remediation plan deletes the member values behind findings of one category, a few accounts at
a time, through the same engine as every other write: guard rails, rollback point, per-user
verification (each user ends with exactly the access the plan says), audit, ``rollback N``.
The plan records which findings it fixes; apply rebuilds it from them against the live directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from . import changeset as cs
from . import dn as dnutil
from .errors import RbacMigrateError, UsageError
from .migration.live import LiveView

# Categories whose findings are member values that can simply be deleted.
REMOVABLE = ("leaver-grant", "dangling-member", "redundant-grant", "not-in-hr", "mover-leftover", "peer-outlier")
# Removing these changes what a user can reach; the others leave access as it is (or name nobody).
CHANGES_ACCESS = ("leaver-grant", "not-in-hr", "mover-leftover", "peer-outlier")


class RemediationError(RbacMigrateError):
    """A remediation plan cannot be made or applied as asked."""


@dataclass(frozen=True)
class Target:
    """One member value to delete from one group, as a finding named it."""

    category: str
    group_dn: str
    value: str
    user: str  # the account's id, or the value itself for dangling members
    key: str = ""  # the finding's key in the findings register


def choose(findings: Iterable, category: str, users: Iterable[str] = ()) -> list[Target]:
    """The targets behind open findings of one category (accepted ones are not among them), maybe for some users."""
    if category not in REMOVABLE:
        raise UsageError(
            f"findings of category {category} are reviewed, not removed: use one of {', '.join(REMOVABLE)}"
        )
    wanted = {u.strip().lower() for u in users if u.strip()}
    found = []
    for finding in findings:
        value = finding.member_value or finding.user_dn  # the member value: the account's DN, or a dangling value
        if finding.category != category or not finding.group_dn or not value:
            continue
        names = {finding.user_id.lower(), dnutil.normalize(value)}
        if wanted and not (names & wanted or {dnutil.normalize(w) for w in wanted if "=" in w} & names):
            continue
        found.append(Target(category, finding.group_dn, value, finding.user_id or value, getattr(finding, "key", "")))
    return found


def intent(category: str, targets: list[Target]) -> dict:
    return {
        "category": category,
        "targets": [{"group": t.group_dn, "value": t.value, "user": t.user, "key": t.key} for t in targets],
    }


def build(view: LiveView, settings, wanted: dict, batch_size: int | None, directory_name: str = "") -> cs.ChangeSet:
    """The change set deleting the intent's member values, one unit per account, against the directory now."""
    category = wanted.get("category")
    raw = wanted.get("targets")
    if category not in REMOVABLE or not isinstance(raw, list):
        raise RemediationError("the remediation plan's intent names no category and targets")
    by_value: dict[str, list[Target]] = {}
    for item in raw:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("group", "value", "user")):
            raise RemediationError("the remediation plan's intent has a target that is not a group and a value")
        target = Target(category, item["group"], item["value"], item["user"], str(item.get("key") or ""))
        by_value.setdefault(dnutil.normalize(target.value), []).append(target)
    units, chosen = [], []
    for targets in by_value.values():
        if batch_size is not None and len(units) >= batch_size:
            break
        unit = _unit(view, settings, category, targets)
        if unit is not None:
            units.append(unit)
            chosen += targets
    if not units:
        raise RemediationError(f"nothing to remediate: no {category} finding is still in the directory")
    return cs.ChangeSet(
        kind="remediate",
        title=f"remove {len(chosen)} {category} member values of {len(units)} accounts",
        intent=intent(category, chosen),
        units=units,
        directory=directory_name,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _unit(view: LiveView, settings, category: str, targets: list[Target]) -> cs.Unit | None:
    value = targets[0].value
    uuid = view.uuid_of(value)
    dangling = category == "dangling-member"
    if dangling and uuid is not None:
        return None  # the value names an entry again: no longer a dangling member
    member = cs.Ref(value, uuid, targets[0].user)
    edits: list[cs.Edit] = []
    for target in targets:
        group = cs.Ref(view.spelled(dnutil.normalize(target.group_dn)), view.uuid_of(target.group_dn))
        values = _members(view, settings, target.group_dn)
        if values is None or dnutil.normalize(value) not in {dnutil.normalize(v) for v in values}:
            continue  # already gone
        if settings.flavour != "ad" and all(dnutil.normalize(v) == dnutil.normalize(value) for v in values if v):
            edits.append(cs.Edit(cs.ADD, group, cs.Ref("", None)))  # groupOfNames keeps one value
        edits.append(cs.Edit(cs.DELETE, group, member, dangling=dangling))
    if not edits:
        return None
    subjects = [] if dangling else [cs.Subject(member, view.access(value), view.expected_access(value, edits))]
    if subjects and category not in CHANGES_ACCESS and subjects[0].lost:
        raise RemediationError(
            f"{targets[0].user}: removing {category} values would take away access ({sorted(subjects[0].lost)[:3]})"
        )
    return cs.Unit(targets[0].user, edits, subjects)


def _members(view: LiveView, settings, group_dn: str) -> list[str] | None:
    attrs = view.directory.read_entry(group_dn, [settings.member_attribute])
    if attrs is None:
        return None
    return attrs.get(settings.member_attribute.lower(), [])


def plan(
    settings,
    store,
    category: str,
    users: Iterable[str] = (),
    batch_size: int | None = None,
    prompt=None,
) -> cs.ChangeSet:
    """A remediation change set for the next ``batch_size`` accounts with findings of ``category``."""
    from . import connections, reports
    from .migration.batches import journal_rows
    from .migration.guards import GuardRails

    settings.require("grant_base", "role_base")
    size = batch_size or settings.max_batch_size
    if size > settings.max_batch_size:
        raise UsageError(f"--batch-size {size} is more than max_batch_size {settings.max_batch_size}")
    report = reports.orphans(store)
    targets = choose(report.findings, category, users)
    if not targets:
        who = f" for {', '.join(users)}" if users else ""
        raise RemediationError(f"no open {category} finding{who} in snapshot {report.snapshot.id}")
    with connections.directory_for(settings, prompt) as directory:
        view = LiveView(directory, settings)
        changes = build(view, settings, intent(category, targets), size, directory.target)
        changes.snapshot = report.snapshot.id
        GuardRails(view, settings).check(journal_rows(changes)[1])
        return changes


def mark_fixed(store, changes: cs.ChangeSet, batch_id: int) -> int:
    """The findings register learns which batch fixed which findings."""
    keys = [t.get("key") for t in changes.intent.get("targets", []) if isinstance(t, dict) and t.get("key")]
    findings = getattr(store, "findings", None)
    if findings is None or not keys:
        return 0
    return findings.mark_remediated(keys, batch_id, datetime.now(timezone.utc))
