"""What role mining returns, and an independent check that a result is an exact cover."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MinedRole:
    """A proposed role: the grants it carries and the users who would hold it."""

    grants: frozenset[str]
    holders: frozenset[str]


@dataclass(frozen=True)
class MiningResult:
    """A set of roles that reproduces everyone's access exactly.

    ``exceptions`` are direct grants that stay direct (grants too rare for any role allowed by
    ``min_holders``). ``lower_bound`` is a proven floor on the number of roles, baseline
    included, that any exact cover under the same settings needs; when it equals
    ``role_count`` the result is a minimum.
    """

    roles: tuple[MinedRole, ...]
    baseline: MinedRole | None = None
    exceptions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    lower_bound: int = 0

    @property
    def role_count(self) -> int:
        """Number of roles, the baseline included."""
        return len(self.roles) + (self.baseline is not None)

    @property
    def proven_minimal(self) -> bool:
        """Whether no exact cover under the same settings has fewer roles."""
        return self.role_count <= self.lower_bound

    def all_roles(self) -> tuple[MinedRole, ...]:
        """The baseline (if any) followed by the other roles."""
        return ((self.baseline,) if self.baseline else ()) + self.roles


def verify_exact(access: Mapping[str, Iterable[str]], result: MiningResult) -> list[str]:
    """List every way ``result`` fails to reproduce ``access`` exactly; empty when it does.

    Checks that no role is held by a user lacking one of its grants, that exceptions are real
    grants of their user, and that each user's roles plus exceptions give exactly their grants.
    """
    wanted = {user: set(grants) for user, grants in access.items()}
    problems: list[str] = []
    got: dict[str, set[str]] = {user: set() for user in wanted}
    for label, role in _labelled(result):
        for holder in sorted(role.holders):
            if holder not in wanted:
                problems.append(f"{label} is held by unknown user {holder!r}")
                continue
            extra = role.grants - wanted[holder]
            if extra:
                problems.append(f"{label} would give {holder!r} {_names(extra)}, not held today")
            got[holder] |= role.grants
    for user, grants in sorted(result.exceptions.items()):
        if user not in wanted:
            problems.append(f"exceptions name unknown user {user!r}")
            continue
        if grants - wanted[user]:
            problems.append(f"exceptions for {user!r} list {_names(grants - wanted[user])}, not held")
        got[user] |= grants
    for user in sorted(wanted):
        lost = wanted[user] - got[user]
        if lost:
            problems.append(f"{user!r} would lose {_names(lost)}")
    return problems


def _labelled(result: MiningResult) -> list[tuple[str, MinedRole]]:
    labelled = [(f"role {number} ({_names(role.grants)})", role) for number, role in enumerate(result.roles, 1)]
    if result.baseline is not None:
        labelled.insert(0, (f"baseline role ({_names(result.baseline.grants)})", result.baseline))
    return labelled


def _names(grants: Iterable[str], limit: int = 5) -> str:
    ordered = sorted(grants)
    shown = ", ".join(ordered[:limit])
    return shown if len(ordered) <= limit else f"{shown} and {len(ordered) - limit} more"
