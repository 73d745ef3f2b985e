"""Joiner proposals: which role fits a new joiner, with evidence from their peers. Pure.

The access asked for is named explicitly, copied from a model user, or read off the joiner's
peers. It is kept at the level it is given (a grant that follows from another through nesting
is dropped) and compared with roles by effective grants, so nesting never hides a match.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .access import MembershipGraph
from .errors import RbacMigrateError
from .model import GRANT
from .roles.catalogue import suggest_name

EXISTING = "existing role"
EXISTING_SET = "existing roles"
COMBINED = "roles + extras"
NEW = "new role"
RULE = "rule"
ASKED, MODEL, PEERS, NESTED = "asked", "model", "peers", "through nesting"


class ProposalError(RbacMigrateError):
    """Nothing can be proposed from what was given."""


@dataclass(frozen=True)
class KnownRole:
    """A role proposals may use: its effective grants and the users who hold it."""

    name: str
    dn: str
    grants: frozenset[int]
    holders: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Request:
    """Who joins, what they asked for, and who their peers are."""

    joiner: int
    joiner_name: str
    peers: frozenset[int]
    peer_label: str = "peers"
    grants: frozenset[int] = frozenset()
    model: int | None = None
    min_share: float = 0.5
    name_parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """How many of the joiner's peers reach a grant, and why it is in (or out of) the request."""

    grant: int
    holding: int
    peers: int
    source: str


@dataclass(frozen=True)
class Proposal:
    """One way to give the joiner the access asked for.

    ``movable``: other enabled users who already reach all of it, so could take the same
    role(s) later without gaining anything.
    """

    number: int
    kind: str
    roles: tuple[KnownRole, ...]
    extras: frozenset[int]
    new_role: str | None
    grants: frozenset[int]
    movable: int


@dataclass(frozen=True)
class Proposals:
    request: Request
    requested: frozenset[int]
    evidence: tuple[Evidence, ...]
    not_copied: tuple[Evidence, ...]
    proposals: tuple[Proposal, ...]
    nested: tuple[Evidence, ...] = ()  # grants the request reaches through nesting, beyond those named

    def holds(self, proposal: Proposal) -> bool:
        """Whether the joiner already holds every role of the proposal."""
        return bool(proposal.roles) and all(self.request.joiner in r.holders for r in proposal.roles)

    def phrase(self, evidence: Evidence) -> str:
        """'4 of 5 Finance / Accountant', the way the service desk reads evidence."""
        if not evidence.peers:
            return "no peers to compare"
        return f"{evidence.holding} of {evidence.peers} {self.request.peer_label}"

    def get(self, number: int) -> Proposal:
        for proposal in self.proposals:
            if proposal.number == number:
                return proposal
        raise ProposalError(f"there is no proposal {number}: 'joiner propose' numbers them 1 to {len(self.proposals)}")


def propose(
    graph: MembershipGraph,
    request: Request,
    roles: Iterable[KnownRole],
    taken: Collection[str],
    ruled: Iterable[KnownRole] = (),
) -> Proposals:
    """Proposals in order of fit: roles whose assignment rule matches the joiner; exact existing roles;
    existing roles plus extras; a new role."""
    requested, evidence, not_copied = _requested(graph, request)
    wanted = graph.grants_given(requested)
    movable = graph.reaching_all(wanted) - graph.disabled - {request.joiner}
    roles = sorted(roles, key=lambda r: r.name.lower())
    ruled = sorted(ruled, key=lambda r: r.name.lower())
    found: list[tuple] = [(RULE, (role,), frozenset(), None, len(movable - role.holders)) for role in ruled]
    found += [
        (EXISTING, (role,), frozenset(), None, len(movable - role.holders))
        for role in roles
        if role.grants == wanted and role not in ruled
    ]
    if not found:
        combo, extras = _combine(roles, requested, wanted)
        if combo:
            kind = COMBINED if extras else EXISTING_SET
            holding_all = frozenset.intersection(*(r.holders for r in combo))
            found.append((kind, combo, extras, None, len(movable - holding_all)))
        name = suggest_name(request.name_parts, taken, fallback=f"for-{request.joiner_name}")
        found.append((NEW, (), frozenset(), name, len(movable)))
    proposals = tuple(
        Proposal(number, kind, combo, extras, name, requested, count)
        for number, (kind, combo, extras, name, count) in enumerate(found, start=1)
    )
    return Proposals(request, requested, evidence, not_copied, proposals, _nested(graph, request, wanted - requested))


def _nested(graph: MembershipGraph, request: Request, grants: Collection[int]) -> tuple[Evidence, ...]:
    """Evidence for the grants that come with the request through nesting: the role gives them too."""
    peers = request.peers - {request.joiner}
    ordered = sorted(grants, key=lambda g: graph.name(g).lower())
    return tuple(Evidence(g, len(graph.reaching(g, peers)) if peers else 0, len(peers), NESTED) for g in ordered)


def _requested(graph: MembershipGraph, request: Request) -> tuple[frozenset[int], tuple[Evidence, ...], tuple]:
    peers = request.peers - {request.joiner}
    count = len(peers)

    def evidence(grant: int, source: str) -> Evidence:
        return Evidence(grant, len(graph.reaching(grant, peers)) if count else 0, count, source)

    chosen = dict.fromkeys(request.grants, ASKED)
    dropped: list[Evidence] = []
    if request.model is not None:
        for grant in sorted(graph.assigned_grants(request.model) - chosen.keys()):
            found = evidence(grant, MODEL)
            if count and found.holding < request.min_share * count:
                dropped.append(found)
            else:
                chosen[grant] = MODEL
    elif not request.grants:
        if not count:
            raise ProposalError(
                f"{request.joiner_name} has no peers to learn from: name the access with --grant or --like USER"
            )
        needed = request.min_share * count
        for grant in graph.of_kind(GRANT):
            # Counting costs the group's size; a group smaller than the threshold cannot qualify.
            if graph.size(grant) >= needed and len(graph.reaching(grant, peers)) >= needed:
                chosen[grant] = PEERS
    requested = graph.reduce(chosen)
    if not requested:
        raise ProposalError(f"nothing to propose for {request.joiner_name}: no grant qualifies")
    ordered = sorted(requested, key=lambda g: graph.name(g).lower())
    dropped.sort(key=lambda e: graph.name(e.grant).lower())
    return requested, tuple(evidence(g, chosen[g]) for g in ordered), tuple(dropped)


def _combine(
    roles: list[KnownRole], requested: frozenset[int], wanted: frozenset[int]
) -> tuple[tuple[KnownRole, ...], frozenset[int]]:
    """Greedy: roles that give nothing beyond the request, largest contribution first; the rest as extras."""
    usable = [r for r in roles if r.grants and r.grants <= wanted]
    chosen: list[KnownRole] = []
    covered: set[int] = set()
    while True:
        best = max(usable, key=lambda r: len(r.grants - covered), default=None)
        if best is None or not best.grants - covered:
            break
        chosen.append(best)
        covered |= best.grants
    return tuple(chosen), frozenset(g for g in requested if g not in covered)
