"""The Python API: one plain function per command, settings first. The CLI only renders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import dn as dnutil
from . import snapshot as snapshots
from .access import AccessGraph, AccessPath, Grant, find_one, match_entries
from .config import Settings, bind_password
from .model import GRANT, GROUP_KINDS, ROLE, USER, Entry, Snapshot
from .snapshot import GROUP_FILTER, as_filter
from .store import Store, open_store

if TYPE_CHECKING:  # the directory layer (ldap3) loads only for commands that talk to the server
    from .directory import Directory, ServerCapabilities

Prompt = Callable[[str], str]


def store_for(settings: Settings) -> Store:
    """Open the configured store, applying pending schema migrations."""
    return open_store(settings.store)


def directory_for(settings: Settings, prompt: Prompt | None = None) -> Directory:
    """Connect and bind with the configured profile."""
    from .directory import connect

    settings.require("url")
    return connect(settings, bind_password(settings, prompt=prompt))


@dataclass(frozen=True)
class CheckReport:
    target: str
    bind_dn: str
    capabilities: ServerCapabilities
    users: int
    disabled: int
    grant_groups: int
    roles: int
    nested_member_of: bool
    primary_group_members: int | None = None  # AD only: memberships that member does not list


def check(settings: Settings, prompt: Prompt | None = None) -> CheckReport:
    """Connect, bind, verify the bases, count what is managed, report capabilities."""
    settings.require("url", "user_base", "grant_base", "role_base")
    with directory_for(settings, prompt) as directory:
        for name in ("user_base", "grant_base", "role_base"):
            directory.check_base(name, getattr(settings, name))
        user_filter = as_filter(settings.user_filter, "user_filter")
        disabled_filter = as_filter(settings.disabled_filter, "disabled_filter")

        def count(base: str, search_filter: str) -> int:
            return sum(1 for _ in directory.search(base, search_filter, ["1.1"]))

        return CheckReport(
            target=directory.target,
            bind_dn=settings.bind_dn or "anonymous",
            capabilities=directory.capabilities(),
            users=count(settings.user_base, user_filter),
            disabled=count(settings.user_base, f"(&{user_filter}{disabled_filter})"),
            grant_groups=count(settings.grant_base, GROUP_FILTER),
            roles=count(settings.role_base, GROUP_FILTER),
            nested_member_of=_nested_member_of(directory, settings),
            primary_group_members=_primary_group_members(directory, settings),
        )


def _primary_group_members(directory: Directory, settings: Settings) -> int | None:
    """Accounts whose primary group is a managed group: reported, never changed (AD only)."""
    if settings.flavour != "ad":
        return None
    from .directory.ad import primary_group_members

    return len(primary_group_members(directory, settings))


def _nested_member_of(directory: Directory, settings: Settings) -> bool:
    """Whether the server computes memberOf (dynlist on OpenLDAP; always on AD).

    Asked of one member of one grant group: computing memberOf for every user is slow on slapd.
    """
    if settings.flavour == "ad":
        return True
    member_attr = settings.member_attribute
    for group_dn, attrs in directory.search(
        settings.grant_base, GROUP_FILTER, [member_attr], paged=False, size_limit=1
    ):
        for member in attrs.get(member_attr.lower(), [])[:1]:
            for _dn, found in directory.search(member, "(objectClass=*)", ["memberOf"], scope="base", paged=False):
                return any(dnutil.normalize(v) == dnutil.normalize(group_dn) for v in found.get("memberof", []))
    return False


def take_snapshot(settings: Settings, store: Store, progress=None, prompt: Prompt | None = None) -> Snapshot:
    """Read the directory and store one immutable snapshot."""
    with directory_for(settings, prompt) as directory:
        snap = snapshots.take(directory, settings, progress)
    store.save_snapshot(snap)
    return snap


@dataclass(frozen=True)
class UserAccess:
    snapshot_id: int
    user: Entry
    roles: list[Entry]
    grants: list[Grant]


def _user_graph(store: Store, user: str, snapshot: str | int | None) -> tuple[AccessGraph, Entry]:
    info = store.snapshot_info(snapshot)
    entry = find_one(store.find_entries(info.id, user, (USER,)), "user", user)
    snap = store.load_snapshot(info.id, kinds=())
    snap.entries.append(entry)
    return AccessGraph(snap), entry


def access_show(store: Store, user: str, snapshot: str | int | None = None) -> UserAccess:
    """A user's effective grants with their sources, from a snapshot (latest by default)."""
    graph, entry = _user_graph(store, user, snapshot)
    roles = sorted(
        (graph.by_idx[g] for g in graph.reachable(entry.idx) if graph.by_idx[g].kind == ROLE),
        key=lambda e: e.name.lower(),
    )
    return UserAccess(graph.snapshot.id or 0, entry, roles, graph.grants_of(entry.idx))


def access_explain(
    store: Store, user: str, group: str, snapshot: str | int | None = None
) -> tuple[Entry, Entry, list[AccessPath]]:
    """Every membership path from a user to a group; an empty list means no access."""
    graph, entry = _user_graph(store, user, snapshot)
    target = find_one(_match_groups(graph.snapshot, group), "group", group)
    return entry, target, graph.paths(entry.idx, target.idx)


def _match_groups(snap: Snapshot, name: str) -> list[Entry]:
    found = match_entries(snap, name, GROUP_KINDS)
    grants = [e for e in found if e.kind == GRANT]
    return grants if len(found) > 1 and len(grants) == 1 else found
