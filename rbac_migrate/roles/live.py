"""Fresh directory look-ups for role commands: users, groups and member values as they are now.

Writes are planned from these rather than from a snapshot: a role created a minute ago, or a
joiner whose account was made this morning, is not in last night's snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import dn as dnutil
from ..config import Settings
from ..errors import NotFoundError, UsageError
from ..kinds import GROUP_FILTER
from ..model import GRANT, ROLE, USER, Entry
from ..snapshot import as_filter

# groupOfNames must keep one member value; the empty DN names no entry, so it holds a role group
# open without making anyone a holder (slapd accepts it; refint and dynlist leave it alone).
PLACEHOLDER = ""


@dataclass(frozen=True)
class LiveUser:
    """A user account as the directory shows it now; ``attrs`` are the peer attributes."""

    dn: str
    name: str
    enabled: bool
    attrs: dict[str, str] = field(default_factory=dict)

    def entry(self) -> Entry:
        """The user as a snapshot entry that is in no snapshot (index -1)."""
        return Entry(-1, USER, self.dn, self.name, enabled=self.enabled, attrs=self.attrs)


def kind_of(settings: Settings, dn: str) -> str | None:
    """grant or role by the base the DN lies in (the more specific base wins), else None."""
    bases = sorted(
        [(settings.role_base, ROLE), (settings.grant_base, GRANT)], key=lambda item: -len(dnutil.normalize(item[0]))
    )
    for base, kind in bases:
        if dnutil.is_within(dn, base) and dnutil.normalize(dn) != dnutil.normalize(base):
            return kind
    return None


def is_protected(settings: Settings, dn: str, name: str | None = None) -> bool:
    """Whether a DN (or the account of that name) is one no write may touch."""
    names = {p.strip().lower() for p in settings.protected_accounts if "=" not in p}
    dns = {dnutil.normalize(p) for p in settings.protected_accounts if "=" in p}
    if not dn:
        return False
    rdn_value = dnutil.first_value(dn).lower()
    return dnutil.normalize(dn) in dns or rdn_value in names or (name or "").lower() in names


def find_user(directory, settings: Settings, name: str) -> LiveUser:
    """The user named by id attribute or DN, with enabled state and peer attributes."""
    from ..directory import escape_filter_chars

    user_filter = as_filter(settings.user_filter, "user_filter")
    attributes = [settings.id_attribute, *settings.peer_attributes]
    if "=" in name:
        if not dnutil.is_within(name, settings.user_base):
            raise NotFoundError(f"user {name} is not under user_base {settings.user_base}")
        found = list(directory.search(name, user_filter, attributes, scope="base", paged=False))
    else:
        search_filter = f"(&{user_filter}({settings.id_attribute}={escape_filter_chars(name.strip())}))"
        found = list(directory.search(settings.user_base, search_filter, attributes, paged=False))
    if not found:
        raise NotFoundError(f"no user '{name}' under {settings.user_base}")
    if len(found) > 1:
        raise UsageError(f"user '{name}' is ambiguous: name it by DN ({'; '.join(dn for dn, _ in found[:5])})")
    dn, attrs = found[0]
    disabled_filter = f"(&{user_filter}{as_filter(settings.disabled_filter, 'disabled_filter')})"
    disabled = any(True for _ in directory.search(dn, disabled_filter, ["1.1"], scope="base", paged=False))
    return live_user(settings, dn, attrs, not disabled)


def live_user(settings: Settings, dn: str, attrs: dict[str, list[str]], enabled: bool) -> LiveUser:
    """A user from an entry read with the id attribute and the peer attributes."""
    peers = {label: attrs[label.lower()][0] for label in settings.peer_attributes if attrs.get(label.lower())}
    user_id = (attrs.get(settings.id_attribute.lower()) or [dnutil.first_value(dn)])[0]
    return LiveUser(dn, user_id, enabled, peers)


def find_group(directory, settings: Settings, name: str, kind: str) -> str:
    """The DN of the grant group or role named by cn or DN; one-line errors otherwise."""
    from ..directory import escape_filter_chars

    base = settings.grant_base if kind == GRANT else settings.role_base
    if "=" in name:
        if kind_of(settings, name) != kind:
            raise UsageError(f"{kind} {name} is not under {kind}_base {base}: only groups there are managed")
        if not any(True for _ in directory.search(name, GROUP_FILTER, ["1.1"], scope="base", paged=False)):
            raise NotFoundError(f"no {kind} group {name}")
        return name
    search_filter = f"(&{GROUP_FILTER}(cn={escape_filter_chars(name.strip())}))"
    found = [
        dn for dn, _ in directory.search(base, search_filter, ["1.1"], paged=False) if kind_of(settings, dn) == kind
    ]
    if not found:
        raise NotFoundError(f"no {kind} '{name}' under {base}")
    if len(found) > 1:
        raise UsageError(f"{kind} '{name}' is ambiguous: name it by DN ({'; '.join(found[:5])})")
    return found[0]


def existing_role(directory, settings: Settings, name: str) -> str | None:
    """The DN of the role with this cn anywhere under the role base, or None."""
    try:
        return find_group(directory, settings, name, ROLE)
    except NotFoundError:
        return None


def find_groups(directory, settings: Settings, names: Iterable[str], kind: str) -> list[str]:
    """Each named group once, in the order given."""
    found: dict[str, str] = {}
    for name in names:
        dn = find_group(directory, settings, name, kind)
        found.setdefault(dnutil.normalize(dn), dn)
    return list(found.values())


def member_values(directory, settings: Settings, dn: str) -> list[str] | None:
    """The group's member values now (placeholder included), or None when there is no entry."""
    attrs = directory.read_entry(dn, [settings.member_attribute])
    if attrs is None:
        return None
    return attrs.get(settings.member_attribute.lower(), [])


def holders(values: Iterable[str] | None) -> list[str]:
    """Member values that stand for someone: everything but the placeholder."""
    return [v for v in values or () if v.strip() != PLACEHOLDER]


def contains(values: Iterable[str] | None, dn: str) -> bool:
    key = dnutil.normalize(dn)
    return any(dnutil.normalize(v) == key for v in values or ())


def groups_holding(directory, settings: Settings, value: str, *kinds: str) -> list[str]:
    """DNs of the managed groups of these kinds that list value as a member."""
    bases = {settings.grant_base if kind == GRANT else settings.role_base for kind in kinds}
    found: dict[str, str] = {}
    for base in sorted(bases):
        for dn, _ in directory.groups_with_member(value, base, ["1.1"]):
            if kind_of(settings, dn) in kinds:
                found.setdefault(dnutil.normalize(dn), dn)
    return list(found.values())


def assigned_grants(directory, settings: Settings, user_dn: str) -> list[str]:
    """A user's direct grants and the grants of the roles they hold (not what nesting adds)."""
    found: dict[str, str] = {}
    for holder in [user_dn, *groups_holding(directory, settings, user_dn, ROLE)]:
        for dn in groups_holding(directory, settings, holder, GRANT):
            found.setdefault(dnutil.normalize(dn), dn)
    return list(found.values())


def role_dn_for(settings: Settings, name: str) -> str:
    """Where a new role of this (already checked) name lives: no character of it needs escaping."""
    return f"cn={name},{settings.role_base}"


def new_group_attributes(settings: Settings, name: str, description: str | None, members: list[str]) -> dict:
    """Object classes and attributes of a new role group for this directory flavour."""
    if settings.flavour == "ad":
        # AD groups may be empty; a global security group is what a role means there.
        attrs: dict[str, list[str]] = {"objectClass": ["top", "group"], "cn": [name], "sAMAccountName": [name]}
        if members:
            attrs["member"] = list(members)
    else:
        unique = settings.member_attribute.lower() == "uniquemember"
        attrs = {
            "objectClass": ["top", "groupOfUniqueNames" if unique else "groupOfNames"],
            "cn": [name],
            settings.member_attribute: [PLACEHOLDER, *members],
        }
    if description:
        attrs["description"] = [description]
    return attrs


def names(dns: Iterable[str], limit: int = 10) -> str:
    """'a, b, c and 4 more' from DNs, for confirmations."""
    shown = [dnutil.first_value(dn) for dn in dns]
    text = ", ".join(shown[:limit])
    return text if len(shown) <= limit else f"{text} and {len(shown) - limit} more"


def users_with(directory, settings: Settings, attrs: dict[str, str], any_of: bool = False) -> list[LiveUser]:
    """Users whose peer attributes have all (or with ``any_of``, any) of these values, as they are now."""
    from ..directory import escape_filter_chars

    if not attrs:
        return []
    user_filter = as_filter(settings.user_filter, "user_filter")
    terms = "".join(f"({name}={escape_filter_chars(value)})" for name, value in attrs.items())
    wanted = f"(|{terms})" if any_of else terms
    disabled_filter = as_filter(settings.disabled_filter, "disabled_filter")
    disabled = {
        dnutil.normalize(dn)
        for dn, _ in directory.search(settings.user_base, f"(&{user_filter}{disabled_filter}{wanted})", ["1.1"])
    }
    found = []
    for dn, values in directory.search(
        settings.user_base, f"(&{user_filter}{wanted})", [settings.id_attribute, *settings.peer_attributes]
    ):
        found.append(live_user(settings, dn, values, dnutil.normalize(dn) not in disabled))
    return sorted(found, key=lambda u: (u.name.lower(), dnutil.normalize(u.dn)))
