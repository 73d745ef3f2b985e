"""Role questions answered from the store: joiner proposals, candidates, the catalogue, mining.

Everything here reads the latest snapshot (or the one named) plus the role catalogue; only a
joiner whose account is newer than the snapshot is looked up in the directory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from typing import TYPE_CHECKING

from .. import dn as dnutil
from .. import proposals
from ..access import MembershipGraph, find_one, match_entries
from ..config import Settings
from ..connections import Prompt, directory_for
from ..errors import NotFoundError, RbacMigrateError, UsageError
from ..model import ACTIVE, DANGLING, DELETED, EXTERNAL, GRANT, ROLE, USER, Entry, RoleDefinition, RoleEvent, Snapshot
from .catalogue import Candidates, MinedNames, matches, rank_candidates

if TYPE_CHECKING:
    from ..mining.jobs import JobMining
    from ..mining.rolesfile import RolesFile
    from ..store import Store
    from .live import LiveUser


@dataclass(frozen=True)
class JoinerProposals:
    snapshot_id: int
    joiner: Entry
    graph: MembershipGraph
    result: proposals.Proposals


def propose(
    settings: Settings,
    store: Store,
    user: str | LiveUser,
    like: str | None = None,
    grants: Sequence[str] = (),
    min_share: float = 0.5,
    snapshot: str | int | None = None,
    prompt: Prompt | None = None,
) -> JoinerProposals:
    """Roles that fit a joiner, best first, each with its evidence."""
    if not 0 < min_share <= 1:
        raise UsageError(f"--min-share must be more than 0 and at most 1, not {min_share}")
    info = store.snapshot_info(snapshot)
    joiner = _joiner(settings, store, info.id, user, prompt)
    if not joiner.enabled:
        raise RbacMigrateError(f"user {joiner.name} is disabled: proposals are for active accounts")
    model = find_one(store.find_entries(info.id, like, (USER,)), "user", like) if like else None
    peers = frozenset(store.find_peers(info.id, joiner.attrs))
    groups = store.load_snapshot(info.id, kinds=())
    asked = frozenset(find_one(match_entries(groups, g, (GRANT,)), "grant", g).idx for g in grants)
    graph = MembershipGraph(groups, *store.not_users_and_disabled(info.id))
    roles, taken = known_roles(store, graph)
    request = proposals.Request(
        joiner=joiner.idx,
        joiner_name=joiner.name,
        peers=peers,
        peer_label=" / ".join(joiner.attrs.values()) or "peers",
        grants=asked,
        model=model.idx if model else None,
        min_share=min_share,
        name_parts=tuple(joiner.attrs.values()),
    )
    rules = store.roles.rules()
    ruled = [r for r in roles if matches(rules.get(dnutil.normalize(r.dn), (None, {}))[1], joiner.attrs)]
    return JoinerProposals(info.id, joiner, graph, proposals.propose(graph, request, roles, taken, ruled))


def keep_proposals(store: Store, found: JoinerProposals) -> int:
    """Store the proposals as shown, with the grants each role gave then: onboarding carries out exactly these."""
    graph = found.graph

    def dns(grants) -> list[str]:
        return sorted(graph.groups[g].dn for g in grants if g in graph.groups)

    body = {
        "user": found.joiner.dn,
        "snapshot": found.snapshot_id,
        "proposals": [
            {
                "number": p.number,
                "kind": p.kind,
                "roles": [{"name": r.name, "dn": r.dn, "grants": dns(r.grants)} for r in p.roles],
                "new_role": p.new_role,
                "grants": dns(p.grants),
                "extras": dns(p.extras),
            }
            for p in found.result.proposals
        ],
    }
    return store.roles.save_proposals(found.joiner.dn, found.snapshot_id, body)


def _joiner(settings: Settings, store: Store, snapshot_id: int, user: str | LiveUser, prompt: Prompt | None) -> Entry:
    """The joiner from the snapshot, else (a new account) as the directory shows it now."""
    from .live import find_user

    name = user if isinstance(user, str) else user.dn
    found = store.find_entries(snapshot_id, name, (USER,))
    if found:
        return find_one(found, "user", name)
    if not isinstance(user, str):
        return user.entry()
    if not settings.url:
        raise NotFoundError(f"no user '{user}' in snapshot {snapshot_id} (and no directory configured to look further)")
    with directory_for(settings, prompt) as directory:
        return find_user(directory, settings, user).entry()


def known_roles(store: Store, graph: MembershipGraph) -> tuple[list[proposals.KnownRole], set[str]]:
    """Roles of the snapshot, overlaid with catalogue changes made since (new, changed, deleted); all names."""
    by_dn = {dnutil.normalize(e.dn): idx for idx, e in graph.groups.items()}
    found = {
        dnutil.normalize(graph.groups[idx].dn): proposals.KnownRole(
            graph.name(idx), graph.groups[idx].dn, graph.grants_given([idx]), graph.holders(idx)
        )
        for idx in graph.of_kind(ROLE)
    }
    for key, definition in _newer_definitions(store, graph.snapshot).items():
        if definition.state == DELETED:
            found.pop(key, None)
            continue
        holders = graph.holders(by_dn[key]) if key in by_dn else frozenset()
        found[key] = proposals.KnownRole(definition.name, definition.dn, _grants_of(graph, by_dn, definition), holders)
    taken = {role.name for role in found.values()} | {d.name for d in store.roles.definitions()}
    return list(found.values()), taken


def _newer_definitions(store: Store, snap: Snapshot) -> dict[str, RoleDefinition]:
    """Catalogue definitions changed after the snapshot was taken, by normalised DN (newest wins)."""
    return {
        dnutil.normalize(d.dn): d for d in store.roles.definitions(include_deleted=True) if d.updated_at > snap.taken_at
    }


def _grants_of(graph: MembershipGraph, by_dn: Mapping[str, int], definition: RoleDefinition) -> frozenset[int]:
    """Effective grants of a catalogue definition; a grant the snapshot lacks never matches anything."""
    known = [by_dn[k] for k in map(dnutil.normalize, definition.grants) if k in by_dn]
    unknown = {-n for n in range(1, len(definition.grants) - len(known) + 1)}
    return graph.grants_given(known) | unknown


@dataclass(frozen=True)
class RoleCandidates:
    role: str
    snapshot_id: int
    users: Mapping[int, Entry]
    graph: MembershipGraph
    result: Candidates


def candidates(store: Store, role: str, max_missing: int = 1, snapshot: str | int | None = None) -> RoleCandidates:
    """Users safe to move onto a role (nobody gains), and near-misses with what they lack."""
    if max_missing < 0:
        raise UsageError("--max-missing must not be negative")
    snap, graph, users = _with_users(store, snapshot)
    matched = match_entries(snap, role, (ROLE,))
    definition = store.roles.find(role)
    by_dn = {dnutil.normalize(e.dn): idx for idx, e in graph.groups.items()}
    if definition is not None and dnutil.normalize(definition.dn) in _newer_definitions(store, snap):
        # Changed since the snapshot: what the role grants now is the catalogue's definition.
        key = dnutil.normalize(definition.dn)
        on_role = graph.holders(by_dn[key]) if key in by_dn else frozenset()
        grants, name = _grants_of(graph, by_dn, definition), definition.name
    elif matched:
        entry = find_one(matched, "role", role)
        grants, on_role, name = graph.grants_given([entry.idx]), graph.holders(entry.idx), entry.name
    else:
        raise NotFoundError(f"no role '{role}' in snapshot {snap.id} or the role catalogue")
    if not grants:
        raise RbacMigrateError(f"role {name} grants nothing: there is no one to move onto it")
    if min(grants) < 0:
        raise RbacMigrateError(f"role {name} grants groups newer than snapshot {snap.id}: take a new snapshot first")
    return RoleCandidates(name, snap.id or 0, users, graph, rank_candidates(graph, grants, on_role, max_missing))


def _with_users(store: Store, snapshot: str | int | None) -> tuple[Snapshot, MembershipGraph, dict[int, Entry]]:
    snap = store.load_snapshot(snapshot, kinds=(USER, EXTERNAL, DANGLING))
    return snap, MembershipGraph(snap), {e.idx: e for e in snap.entries if e.kind == USER}


@dataclass(frozen=True)
class RoleSummary:
    name: str
    dn: str
    description: str | None
    grants: tuple[str, ...]
    holder_count: int | None  # None: not in the snapshot (newer, or deleted)
    managed: bool
    deleted: bool = False
    holders: tuple[str, ...] = ()  # their names, when asked for


@dataclass(frozen=True)
class RoleDetail:
    summary: RoleSummary
    snapshot_id: int | None
    history: list[RoleEvent]
    drift: list[str]
    rule: Mapping[str, str] | None = None  # the assignment rule, if any


def role_list(store: Store) -> tuple[int | None, list[RoleSummary]]:
    """Every role of the latest snapshot and of the catalogue, with grants and holders."""
    snap_id, summaries, _ = _catalogue(store, with_names=False)
    return snap_id, sorted(summaries.values(), key=lambda s: s.name.lower())


def role_show(store: Store, name: str) -> RoleDetail:
    """One role: its grants, holders, where the directory drifted from the catalogue, its history.

    A role deleted with 'role delete' is still shown, from the catalogue, with its history.
    """
    snap_id, summaries, definitions = _catalogue(store, with_names=True)
    matches = _named(list(summaries.values()), name)
    if not matches:
        deleted = _named([d for d in definitions.values() if d.state == DELETED], name)
        matches = [RoleSummary(d.name, d.dn, d.description, (), None, False, True) for d in deleted]
    if not matches:
        raise NotFoundError(f"no role '{name}' in the latest snapshot or the role catalogue")
    if len(matches) > 1:
        raise UsageError(f"role '{name}' is ambiguous: name it by DN ({'; '.join(s.dn for s in matches[:5])})")
    found = matches[0]
    definition = definitions.get(dnutil.normalize(found.dn))
    history = store.roles.history(definition.id) if definition else []
    drift = _drift(found, definition) if found.managed else []
    return RoleDetail(found, snap_id, history, drift, store.roles.rule(found.dn))


def _named(items: list, name: str) -> list:
    """The items (with .name and .dn) that a cn or DN names."""
    if "=" in name:
        key = dnutil.normalize(name)
        return [item for item in items if dnutil.normalize(item.dn) == key]
    return [item for item in items if item.name.lower() == name.strip().lower()]


def _catalogue(store: Store, with_names: bool) -> tuple[int | None, dict[str, RoleSummary], dict[str, RoleDefinition]]:
    """Roles by normalised DN, and the newest catalogue definition at each DN (deleted ones too).

    Holders' names need every user entry loaded; counting them needs only the groups.
    """
    definitions = {dnutil.normalize(d.dn): d for d in store.roles.definitions(include_deleted=True)}
    summaries: dict[str, RoleSummary] = {}
    snap_id = None
    if store.snapshots():
        if with_names:
            snap, graph, users = _with_users(store, None)
        else:
            snap, users = store.load_snapshot(None, kinds=()), {}
            graph = MembershipGraph(snap, *store.not_users_and_disabled(snap.id or 0))
        snap_id = snap.id
        for idx in graph.of_kind(ROLE):
            entry = graph.groups[idx]
            key = dnutil.normalize(entry.dn)
            definition = definitions.get(key)
            if definition and definition.state == DELETED and definition.updated_at > snap.taken_at:
                continue  # deleted since the snapshot was taken
            managed = definition is not None and definition.state == ACTIVE
            grants = sorted(graph.name(g) for g in graph.groups_of(idx) if graph.kind(g) == GRANT)
            holders = graph.holders(idx)
            names = tuple(sorted(users[u].name for u in holders)) if with_names else ()
            description = definition.description if managed else None
            summaries[key] = RoleSummary(
                entry.name, entry.dn, description, tuple(grants), len(holders), managed, holders=names
            )
    for key, definition in definitions.items():
        if key not in summaries and definition.state == ACTIVE:
            grants = tuple(sorted(dnutil.first_value(g) for g in definition.grants))
            summaries[key] = RoleSummary(definition.name, definition.dn, definition.description, grants, None, True)
    return snap_id, summaries, definitions


def _drift(summary: RoleSummary, definition: RoleDefinition | None) -> list[str]:
    """Where the snapshot's grants differ from the catalogue's (changed since, or outside the tool)."""
    if definition is None or summary.holder_count is None:
        return []
    defined = {dnutil.first_value(g) for g in definition.grants}
    seen = set(summary.grants)
    return [f"catalogue only: {g}" for g in sorted(defined - seen)] + [
        f"directory only: {g}" for g in sorted(seen - defined)
    ]


@dataclass(frozen=True)
class MinedRole:
    name: str
    grants: tuple[str, ...]
    holders: tuple[str, ...]
    baseline: bool = False


@dataclass(frozen=True)
class MinedRoles:
    roles: list[MinedRole]
    users: int
    exceptions: Mapping[str, frozenset[str]]
    lower_bound: int
    proven_minimal: bool
    left_out: int = 0  # disabled users not mined
    snapshot_id: int | None = None
    grant_dns: Mapping[str, str] = field(default_factory=dict)  # grant label -> DN (snapshots only)
    settings: Mapping[str, float | int | None] = field(default_factory=dict)

    def roles_file(self) -> RolesFile:
        """The reviewable file of these roles: grants as DNs, holders as evidence."""
        from ..mining.rolesfile import FileRole, RolesFile

        dns = self.grant_dns
        roles = tuple(
            FileRole(
                name=r.name,
                grants=tuple(dns[g] for g in r.grants),
                description=f"mined exact cover: held by {len(r.holders)} users",
                baseline=r.baseline,
                holders=r.holders,
            )
            for r in self.roles
        )
        return RolesFile("exact", roles, snapshot=self.snapshot_id, settings=self.settings)


@dataclass(frozen=True)
class MinedJobs:
    """Roles per job from a snapshot, with the DNs the roles file needs."""

    result: JobMining
    snapshot_id: int
    grant_dns: Mapping[str, str]
    left_out: int = 0  # disabled users not mined

    def roles_file(self) -> RolesFile:
        """The reviewable file of these roles: grants as DNs, evidence and exceptions included."""
        from ..mining.rolesfile import FileException, FileRole, RolesFile

        result, dns = self.result, self.grant_dns
        roles = tuple(
            FileRole(
                name=r.name,
                grants=tuple(sorted(dns[g] for g in r.grants)),
                description=f"{r.label}: held in full by {r.coverage} of {len(r.members)}",
                baseline=r.baseline,
                stands_for=tuple(dict(job) for job in r.jobs),
                holders=tuple(sorted(r.holders)),
                members=len(r.members),
            )
            for r in result.all_roles()
        )
        exceptions = tuple(
            FileException(dns[e.grant], e.why, e.role, tuple(sorted(e.holders)), e.detail) for e in result.exceptions
        )
        settings = {
            "min_share": result.min_share,
            "min_job_size": result.min_job_size,
            "baseline_share": result.baseline_share,
        }
        return RolesFile("jobs", roles, exceptions, self.snapshot_id, settings)


@dataclass(frozen=True)
class _SnapshotAccess:
    snapshot_id: int
    access: dict[str, set[str]]
    attrs: dict[str, Mapping[str, str]]
    taken: set[str]
    grant_dns: dict[str, str]
    left_out: int


def _snapshot_access(store: Store, snapshot: str | int | None, with_roles: bool) -> _SnapshotAccess:
    """Each enabled user's grants by label: direct ones, and with ``with_roles`` those their roles give."""
    snap, graph, users = _with_users(store, snapshot)
    user_label = _labels({i: e for i, e in users.items() if e.enabled})
    grant_label = _labels({i: graph.groups[i] for i in graph.of_kind(GRANT)})
    givers = {g: {g} for g in grant_label}
    if with_roles:
        for role in graph.of_kind(ROLE):
            for grant in graph.assigned_grants(role):
                givers[grant].add(role)
    enabled = frozenset(user_label)
    access: dict[str, set[str]] = {}
    for grant, label in grant_label.items():
        for giver in givers[grant]:
            for member in enabled.intersection(graph.members.get(giver, ())):
                access.setdefault(user_label[member], set()).add(label)
    attrs = {user_label[i]: users[i].attrs for i in user_label}
    taken = {graph.name(i) for i in graph.of_kind(ROLE)} | {d.name for d in store.roles.definitions()}
    dns = {label: graph.groups[i].dn for i, label in grant_label.items()}
    return _SnapshotAccess(snap.id or 0, access, attrs, taken, dns, len(users) - len(user_label))


def mine_snapshot(
    store: Store, snapshot: str | int | None = None, min_holders: int = 1, baseline_share: float | None = None
) -> MinedRoles:
    """Roles that reproduce every enabled user's direct grants exactly, from a snapshot."""
    found = _snapshot_access(store, snapshot, with_roles=False)
    settings = {"min_holders": min_holders, "baseline_share": baseline_share}
    mined = _mine(found.access, found.attrs, found.taken, min_holders, baseline_share, found.left_out)
    return replace(mined, snapshot_id=found.snapshot_id, grant_dns=found.grant_dns, settings=settings)


def mine_jobs_snapshot(
    store: Store,
    snapshot: str | int | None = None,
    min_share: float = 0.75,
    min_job_size: int = 4,
    baseline_share: float | None = None,
) -> MinedJobs:
    """One role per job (users sharing peer-attribute values), from the grants users hold as such.

    A user's grants here are their direct grants and those their roles give, so people already
    moved onto a role still count as their job's peers.
    """
    from ..mining.jobs import mine_jobs

    found = _snapshot_access(store, snapshot, with_roles=True)
    if not any(found.access.values()):
        raise RbacMigrateError("nothing to mine: no user holds a grant")
    if not any(found.attrs.get(user) for user in found.access):
        raise RbacMigrateError(
            "no user has a value for the peer attributes: set peer_attributes to what names a job, or use --exact"
        )
    try:
        result = mine_jobs(
            found.access,
            found.attrs,
            min_share=min_share,
            min_job_size=min_job_size,
            baseline_share=baseline_share,
            taken=found.taken,
        )
    except ValueError as exc:
        raise UsageError(_option_names(str(exc))) from None
    return MinedJobs(result, found.snapshot_id, found.grant_dns, found.left_out)


def _option_names(text: str) -> str:
    for name in ("min_holders", "baseline_share", "min_share", "min_job_size"):
        text = text.replace(name, "--" + name.replace("_", "-"))
    return text


def mine_pairs(path: str | PathLike[str], min_holders: int = 1, baseline_share: float | None = None) -> MinedRoles:
    """Roles for an access export of 'user permission' pairs: no directory, no configuration."""
    from ..mining import read_pairs

    try:
        access = read_pairs(path)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return _mine(access, {}, set(), min_holders, baseline_share)


def _labels(entries: Mapping[int, Entry]) -> dict[int, str]:
    """Each entry's name, or its DN where two entries share a name."""
    counts = Counter(e.name.lower() for e in entries.values())
    return {i: e.name if counts[e.name.lower()] == 1 else e.dn for i, e in entries.items()}


def _mine(access, attrs, taken, min_holders, baseline_share, left_out: int = 0) -> MinedRoles:
    from ..mining import mine_roles, verify_exact

    if not any(access.values()):
        raise RbacMigrateError("nothing to mine: no user holds a grant")
    try:
        result = mine_roles(access, min_holders=min_holders, baseline_share=baseline_share)
    except ValueError as exc:
        raise UsageError(_option_names(str(exc))) from None
    problems = verify_exact(access, result)
    if problems:
        raise RbacMigrateError(f"the roles found do not reproduce access exactly ({problems[0]}); nothing is shown")
    namer = MinedNames(set(taken))
    roles = [
        MinedRole(
            namer.name(role.grants, [attrs.get(h, {}) for h in sorted(role.holders)], role is result.baseline),
            tuple(sorted(role.grants)),
            tuple(sorted(role.holders)),
            role is result.baseline,
        )
        for role in result.all_roles()
    ]
    return MinedRoles(roles, len(access), result.exceptions, result.lower_bound, result.proven_minimal, left_out)
