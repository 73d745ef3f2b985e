"""`rbac-migrate check`: connect, bind, verify the bases, count what is managed, report capabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import dn as dnutil
from .config import Settings
from .connections import Prompt, directory_for
from .kinds import GROUP_FILTER
from .snapshot import as_filter

if TYPE_CHECKING:
    from .directory import Directory, ServerCapabilities


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
