"""A deterministic synthetic organisation, written as LDIF, for tests, benchmarks and demos.

``generate(users, seed)`` builds people, job profiles, grant groups and a few role groups,
then plants the kinds of mess a real directory accumulates (extra grants, movers, leavers,
dangling members, empty groups, an unused role, redundant grants, nested groups).  Every
planted item is recorded in ``SampleOrg.planted`` so tests can check what a tool finds.
The same arguments always give byte-identical LDIF.
"""

from __future__ import annotations

import argparse
import base64
import functools
import io
import itertools
import math
import os
import random
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

MIN_USERS = 50
GRANT = "grant"
ROLE = "role"
LEAVER_TYPE = "leaver"
PLANTED_CATEGORIES = (
    "extra",
    "mover",
    "leaver",
    "dangling",
    "empty_group",
    "unused_role",
    "redundant",
    "nested",
)

Profile = tuple[str, str]  # (department, title)

ORG_CORE = ("email", "intranet", "vpn", "chat")
ORG_OPTIONAL = ("wiki", "timesheets", "expenses")
ORG_DESCRIPTIONS = {
    "email": "Company-wide email",
    "intranet": "Company intranet",
    "vpn": "Remote access VPN",
    "chat": "Company chat",
    "wiki": "Company wiki",
    "timesheets": "Timesheet entry",
    "expenses": "Expense claims",
}
LEVELS = ("read", "write", "admin")
SCOPES = ("prod", "staging", "emea", "amer", "apac", "eu")

# (department, grant prefix, applications, titles with the most common first)
DEPARTMENTS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Engineering",
        "eng",
        ("git", "ci", "k8s", "jira", "artifacts", "grafana", "db", "cloud"),
        (
            "Software Engineer",
            "Senior Software Engineer",
            "QA Engineer",
            "Site Reliability Engineer",
            "Engineering Manager",
            "Data Engineer",
            "Security Engineer",
            "Principal Architect",
        ),
    ),
    (
        "Finance",
        "fin",
        ("ledger", "ap", "ar", "budget", "treasury", "tax", "reporting", "erp"),
        (
            "Accountant",
            "Financial Analyst",
            "Accounts Payable Clerk",
            "Controller",
            "Finance Manager",
            "Tax Specialist",
            "Treasury Analyst",
            "Chief Financial Officer",
        ),
    ),
    (
        "Human Resources",
        "hr",
        ("payroll", "hris", "recruiting", "benefits", "onboarding", "performance", "learning", "records"),
        (
            "HR Generalist",
            "Recruiter",
            "Payroll Specialist",
            "HR Business Partner",
            "Benefits Administrator",
            "HR Manager",
            "Learning Coordinator",
            "Compensation Analyst",
        ),
    ),
    (
        "Sales",
        "sales",
        ("crm", "quotes", "contracts", "forecast", "leads", "commissions", "pricing", "partners"),
        (
            "Account Executive",
            "Sales Development Representative",
            "Account Manager",
            "Sales Engineer",
            "Sales Manager",
            "Sales Operations Analyst",
            "Channel Manager",
            "Regional Sales Director",
        ),
    ),
    (
        "Marketing",
        "mkt",
        ("cms", "analytics", "campaigns", "social", "dam", "events", "seo", "ads"),
        (
            "Marketing Specialist",
            "Content Writer",
            "Graphic Designer",
            "Marketing Manager",
            "SEO Analyst",
            "Events Coordinator",
            "Product Marketing Manager",
            "Marketing Director",
        ),
    ),
    (
        "Customer Support",
        "support",
        ("helpdesk", "kb", "livechat", "telephony", "crm", "refunds", "statuspage", "surveys"),
        (
            "Support Agent",
            "Senior Support Agent",
            "Support Team Lead",
            "Escalation Engineer",
            "Support Manager",
            "Knowledge Manager",
            "Quality Analyst",
            "Support Trainer",
        ),
    ),
    (
        "IT",
        "it",
        ("directory", "mdm", "backup", "itsm", "monitoring", "network", "printers", "licences"),
        (
            "Service Desk Analyst",
            "IT Technician",
            "Systems Administrator",
            "Network Engineer",
            "Endpoint Engineer",
            "IT Manager",
            "IT Architect",
            "Asset Coordinator",
        ),
    ),
    (
        "Legal",
        "legal",
        ("contracts", "matters", "ediscovery", "ip", "policies", "esign", "archive", "billing"),
        (
            "Paralegal",
            "Counsel",
            "Senior Counsel",
            "Contract Manager",
            "Legal Assistant",
            "Privacy Officer",
            "General Counsel",
            "Records Manager",
        ),
    ),
    (
        "Operations",
        "ops",
        ("erp", "inventory", "scheduling", "fleet", "wms", "quality", "maintenance", "planning"),
        (
            "Operations Analyst",
            "Operations Coordinator",
            "Shift Supervisor",
            "Planner",
            "Operations Manager",
            "Quality Inspector",
            "Maintenance Technician",
            "Operations Director",
        ),
    ),
    (
        "Security",
        "sec",
        ("siem", "vault", "edr", "scanner", "pam", "firewall", "iam", "forensics"),
        (
            "Security Analyst",
            "Security Engineer",
            "Incident Responder",
            "Penetration Tester",
            "Security Architect",
            "IAM Engineer",
            "Security Manager",
            "Chief Information Security Officer",
        ),
    ),
    (
        "Product",
        "product",
        ("roadmap", "analytics", "feedback", "experiments", "specs", "prototypes", "beta", "pricing"),
        (
            "Product Manager",
            "Product Owner",
            "Product Analyst",
            "UX Researcher",
            "Senior Product Manager",
            "Product Designer",
            "Technical Writer",
            "Head of Product",
        ),
    ),
    (
        "Data",
        "data",
        ("warehouse", "bi", "notebooks", "lake", "etl", "catalog", "ml", "dashboards"),
        (
            "Data Analyst",
            "Data Scientist",
            "Analytics Engineer",
            "BI Developer",
            "ML Engineer",
            "Data Steward",
            "Data Manager",
            "Data Architect",
        ),
    ),
    (
        "Procurement",
        "proc",
        ("suppliers", "po", "rfq", "catalog", "spend", "invoices", "approvals", "contracts"),
        (
            "Buyer",
            "Procurement Specialist",
            "Category Manager",
            "Supplier Analyst",
            "Procurement Manager",
            "Contract Administrator",
            "Sourcing Lead",
            "Procurement Director",
        ),
    ),
    (
        "Facilities",
        "fac",
        ("badges", "bookings", "cctv", "hvac", "maintenance", "visitors", "parking", "assets"),
        (
            "Facilities Coordinator",
            "Receptionist",
            "Maintenance Engineer",
            "Security Guard",
            "Facilities Manager",
            "Space Planner",
            "Health and Safety Officer",
            "Workplace Director",
        ),
    ),
    (
        "Research",
        "rnd",
        ("lab", "eln", "hpc", "datasets", "instruments", "patents", "samples", "lims"),
        (
            "Research Scientist",
            "Lab Technician",
            "Research Assistant",
            "Senior Scientist",
            "Principal Investigator",
            "Lab Manager",
            "Bioinformatician",
            "Research Director",
        ),
    ),
    (
        "Communications",
        "comms",
        ("newsroom", "press", "social", "media", "translations", "brand", "video", "newsletter"),
        (
            "Communications Specialist",
            "Copywriter",
            "Press Officer",
            "Internal Comms Manager",
            "Translator",
            "Video Producer",
            "Communications Manager",
            "Communications Director",
        ),
    ),
    (
        "Logistics",
        "log",
        ("shipping", "tracking", "customs", "carriers", "warehouse", "returns", "routing", "labels"),
        (
            "Logistics Coordinator",
            "Warehouse Operative",
            "Dispatcher",
            "Customs Specialist",
            "Transport Planner",
            "Warehouse Supervisor",
            "Logistics Manager",
            "Supply Chain Director",
        ),
    ),
    (
        "Internal Audit",
        "audit",
        ("workpapers", "findings", "risks", "controls", "evidence", "reports", "sox", "sampling"),
        (
            "Internal Auditor",
            "Senior Auditor",
            "IT Auditor",
            "Audit Manager",
            "Risk Analyst",
            "Controls Tester",
            "Audit Director",
            "Chief Audit Executive",
        ),
    ),
    (
        "Design",
        "design",
        ("figma", "assets", "research", "prototypes", "fonts", "review", "library", "handoff"),
        (
            "UI Designer",
            "UX Designer",
            "Visual Designer",
            "Design Lead",
            "Design Researcher",
            "Motion Designer",
            "Design Manager",
            "Design Director",
        ),
    ),
    (
        "Quality Assurance",
        "qa",
        ("tests", "defects", "automation", "devices", "perf", "releases", "reports", "labs"),
        (
            "QA Analyst",
            "Test Engineer",
            "Automation Engineer",
            "QA Lead",
            "Performance Engineer",
            "Release Coordinator",
            "QA Manager",
            "Test Architect",
        ),
    ),
)

GIVEN_NAMES = (
    "James Mary John Patricia Robert Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy Anthony "
    "Betty Mark Sandra Donald Ashley Steven Emily Paul Kimberly Andrew Donna Joshua Michelle "
    "Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald Rebecca "
    "Jason Laura Edward Helen Jeffrey Sharon Ryan Cynthia Jacob Kathleen Gary Amy Nicholas "
    "Angela Eric Anna Jonathan Ruth Stephen Brenda Larry Pamela Justin Nicole Scott Katherine "
    "Brandon Samantha Benjamin Christine Samuel Emma Gregory Olivia Alexander Sophia Priya "
    "Rahul Wei Mei Hiroshi Yuki Fatima Omar Aisha Ahmed Ingrid Lars Olga Dmitri Kwame Amara "
    "Mateo Lucia Nikolai Sven Tariq Leila Kenji Hana Arjun Ananya Chidi Ngozi Pablo Elena"
).split() + ["José", "Zoë", "Björn", "Chloé", "Søren", "Łukasz", "François", "Jürgen", "Inés", "Renée"]

SURNAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook "
    "Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward "
    "Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez "
    "Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan "
    "Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson "
    "Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera "
    "Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez "
    "McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns "
    "Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt "
    "Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer "
    "Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant "
    "Dunn Kowalski Nakamura Tanaka Sato Okafor Mensah Singh Sharma Gupta Wang Zhang Liu Ivanov "
    "Petrov Larsen Hansen Johansson Novak Horvat Rossi Bianchi Dubois Moreau Schneider Fischer"
).split() + ["Müller", "Núñez", "García", "Dvořák", "Jørgensen", "O'Brien", "van Dijk", "de la Cruz"]

# Letters NFKD does not decompose to ASCII.
_ASCII_FOLD = str.maketrans({"ø": "o", "ł": "l", "ß": "ss", "æ": "ae", "đ": "d", "œ": "oe"})

_SAFE_STRING = re.compile(r"(?:[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*)?\Z")
_PLAIN_RDN = re.compile(r"([A-Za-z][A-Za-z0-9-]*)=([A-Za-z0-9](?:[A-Za-z0-9 ._-]*[A-Za-z0-9])?)\Z")
_BASE_CLASSES = {
    "dc": ("top", "dcObject", "organization"),
    "o": ("top", "organization"),
    "ou": ("top", "organizationalUnit"),
}


@dataclass(frozen=True, slots=True)
class SampleUser:
    """One person entry; ``previous`` is set for movers, ``leaver`` for departed accounts."""

    uid: str
    dn: str
    cn: str
    department: str
    title: str
    leaver: bool = False
    previous: Profile | None = None
    direct_grants: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    given_name: str = ""
    sn: str = ""
    mail: str = ""
    employee_number: str = ""


@dataclass(frozen=True, slots=True)
class SampleGroup:
    """A grant or role group; ``members`` are the member DN values exactly as written."""

    cn: str
    dn: str
    kind: str
    members: tuple[str, ...]
    description: str = ""


@dataclass
class SampleOrg:
    """The generated organisation plus the ground truth of everything planted in it.

    ``profiles`` maps each (department, title) to its grant-group cns; ``role_profiles`` maps
    each role cn to the profile it stands for.  The lookup caches assume the data is not
    mutated after the first ``effective_grants`` call.
    """

    base_dn: str
    people_dn: str
    grant_base: str
    role_base: str
    users: list[SampleUser]
    groups: list[SampleGroup]
    planted: dict[str, list[Any]]
    profiles: dict[Profile, frozenset[str]] = field(default_factory=dict)
    role_profiles: dict[str, Profile] = field(default_factory=dict)
    _by_uid: dict[str, SampleUser] | None = field(default=None, init=False, repr=False, compare=False)
    _parents: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)
    _by_dn: dict[str, SampleGroup] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def groups_dn(self) -> str:
        return f"ou=groups,{self.base_dn}"

    def ldif_entries(self, include_base: bool = True) -> Iterator[str]:
        """Yield one LDIF record per entry, parents first, each ending with a blank line."""
        if include_base:
            yield _record(self.base_dn, _base_attributes(self.base_dn))
        for dn in (self.people_dn, self.groups_dn, self.grant_base, self.role_base):
            ou = dn.split(",", 1)[0].split("=", 1)[1]
            yield _record(dn, [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", ou)])
        for user in self.users:
            yield _user_record(user)
        for group in self.groups:
            yield _group_record(group)

    def write_ldif(self, fp_or_path: IO[Any] | str | os.PathLike[str], include_base: bool = True) -> None:
        """Stream the LDIF to a text or binary file object, or to a new file at a path."""
        if not hasattr(fp_or_path, "write"):
            with open(fp_or_path, "w", encoding="ascii", newline="\n") as fp:
                self.write_ldif(fp, include_base)
            return
        binary = isinstance(fp_or_path, (io.RawIOBase, io.BufferedIOBase))
        write = fp_or_path.write
        for record in self.ldif_entries(include_base):
            write(record.encode("ascii") if binary else record)

    def effective_grants(self, uid: str) -> frozenset[str]:
        """Grant-group cns the user reaches directly, through roles and through nested groups."""
        user = self._user_index()[uid]
        by_dn = self._group_index()
        parents = self._parent_index()
        start = [f"cn={cn},{self.grant_base}" for cn in user.direct_grants]
        start += [f"cn={cn},{self.role_base}" for cn in user.roles]
        seen: set[str] = set()
        stack = [dn for dn in start if dn in by_dn]
        while stack:
            dn = stack.pop()
            if dn not in seen:
                seen.add(dn)
                stack.extend(parents.get(dn, ()))
        return frozenset(by_dn[dn].cn for dn in seen if by_dn[dn].kind == GRANT)

    def _user_index(self) -> dict[str, SampleUser]:
        if self._by_uid is None:
            self._by_uid = {u.uid: u for u in self.users}
        return self._by_uid

    def _group_index(self) -> dict[str, SampleGroup]:
        if self._by_dn is None:
            self._by_dn = {g.dn: g for g in self.groups}
        return self._by_dn

    def _parent_index(self) -> dict[str, list[str]]:
        """Map each group DN to the DNs of the groups it is a member of."""
        if self._parents is None:
            by_dn = self._group_index()
            parents: dict[str, list[str]] = {}
            for group in self.groups:
                for member in group.members:
                    if member in by_dn:
                        parents.setdefault(member, []).append(group.dn)
            self._parents = parents
        return self._parents


def generate(users: int, seed: int = 1, base_dn: str = "dc=example,dc=org") -> SampleOrg:
    """Build a synthetic organisation of ``users`` people (at least 50), deterministic by seed."""
    if users < MIN_USERS:
        raise ValueError(f"users must be at least {MIN_USERS}, got {users}")
    return _Builder(users, seed, normalise_base_dn(base_dn)).build()


def normalise_base_dn(base_dn: str) -> str:
    """Check a base DN is plain ``attr=value`` RDNs without escapes; return it with types lower-cased."""
    rdns = []
    for part in base_dn.split(","):
        match = _PLAIN_RDN.match(part.strip())
        if not match:
            raise ValueError(f"unsupported base DN {base_dn!r}: use plain attr=value RDNs without escapes")
        rdns.append(f"{match.group(1).lower()}={match.group(2)}")
    if rdns[0].split("=", 1)[0] not in _BASE_CLASSES:
        raise ValueError(f"unsupported base DN {base_dn!r}: first RDN must be dc=, o= or ou=")
    return ",".join(rdns)


# ---------------------------------------------------------------------------- LDIF


def ldif_line(attr: str, value: str) -> str:
    """One ``attr: value`` line, base64-encoded when the value is not an RFC 2849 SAFE-STRING."""
    if _SAFE_STRING.match(value) and not value.endswith(" "):
        return f"{attr}: {value}\n"
    return f"{attr}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}\n"


def _record(dn: str, attributes: Iterable[tuple[str, str]]) -> str:
    lines = [ldif_line("dn", dn)]
    lines.extend(ldif_line(attr, value) for attr, value in attributes)
    lines.append("\n")
    return "".join(lines)


def _base_attributes(base_dn: str) -> list[tuple[str, str]]:
    attr, value = base_dn.split(",", 1)[0].split("=", 1)
    attrs = [("objectClass", oc) for oc in _BASE_CLASSES[attr]]
    attrs.append((attr, value))
    if attr == "dc":
        # organization requires o; the capitalised domain component reads like a company name.
        attrs.append(("o", value.capitalize()))
    return attrs


def _user_record(user: SampleUser) -> str:
    attrs = [
        ("objectClass", "top"),
        ("objectClass", "person"),
        ("objectClass", "organizationalPerson"),
        ("objectClass", "inetOrgPerson"),
        ("uid", user.uid),
        ("cn", user.cn),
        ("sn", user.sn),
        ("givenName", user.given_name),
        ("mail", user.mail),
        ("employeeNumber", user.employee_number),
        ("departmentNumber", user.department),
        ("title", user.title),
    ]
    if user.leaver:
        attrs.append(("employeeType", LEAVER_TYPE))
    return _record(user.dn, attrs)


def _group_record(group: SampleGroup) -> str:
    attrs = [("objectClass", "top"), ("objectClass", "groupOfNames"), ("cn", group.cn)]
    if group.description:
        attrs.append(("description", group.description))
    attrs.extend(("member", member) for member in group.members)
    return _record(group.dn, attrs)


# ---------------------------------------------------------------------------- generation


@functools.cache
def _ascii_letters(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower().translate(_ASCII_FOLD))
    return "".join(ch for ch in folded if "a" <= ch <= "z")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _mail_domain(base_dn: str) -> str:
    rdns = [rdn.split("=", 1) for rdn in base_dn.split(",")]
    if all(attr == "dc" for attr, _ in rdns):
        return ".".join(value.lower() for _, value in rdns)
    return "example.org"


@dataclass(slots=True)
class _Person:
    given: str
    sn: str
    uid: str
    profile: Profile
    previous: Profile | None = None
    leaver: bool = False
    grants: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Department:
    name: str
    prefix: str
    apps: tuple[str, ...]
    titles: tuple[str, ...]
    pool: list[str] = field(default_factory=list)  # grant cns, the department share first


class _Builder:
    """Holds the random stream and the mutable state while an organisation is generated."""

    def __init__(self, users: int, seed: int, base_dn: str) -> None:
        self.rng = random.Random(seed)
        self.n = users
        self.base_dn = base_dn
        self.people_dn = f"ou=people,{base_dn}"
        self.grant_base = f"ou=grants,ou=groups,{base_dn}"
        self.role_base = f"ou=roles,ou=groups,{base_dn}"
        self.domain = _mail_domain(base_dn)
        self.uid_counts: dict[str, int] = {}
        self.planted: dict[str, list[Any]] = {name: [] for name in PLANTED_CATEGORIES}
        self.departments: list[_Department] = []
        self.catalogue: list[str] = []  # ordinary grant cns, org-wide first
        self.empty_groups: list[str] = []
        self.descriptions: dict[str, str] = {}
        self.profiles: dict[Profile, frozenset[str]] = {}
        self.people: list[_Person] = []
        self.roles: dict[str, Profile] = {}
        self.extra_members: dict[str, list[str]] = {}  # non-user member values per group cn

    def build(self) -> SampleOrg:
        self._build_departments()
        self._build_catalogue()
        self._build_profiles()
        self._build_people()
        self._plant_leavers()
        self._plant_movers()
        self._plant_roles()
        self._plant_empty_groups()
        self._plant_extras()
        self._plant_dangling()
        self._plant_nested()
        self._plant_unused_role()
        self._record_redundant()
        return self._assemble()

    # -- shape of the organisation

    def _scale(self) -> float:
        """0 at the smallest size, 1 at 100,000 users."""
        return min(1.0, math.log10(self.n / MIN_USERS) / math.log10(100_000 / MIN_USERS))

    def _build_departments(self) -> None:
        count = 8 + round(12 * self._scale())
        titles = 3 + round(5 * self._scale())
        for name, prefix, apps, all_titles in DEPARTMENTS[:count]:
            k = min(8, max(3, titles + self.rng.choice((-1, 0, 0, 1))))
            self.departments.append(_Department(name, prefix, apps, all_titles[:k]))

    def _build_catalogue(self) -> None:
        for cn in ORG_CORE + ORG_OPTIONAL:
            self._add_grant(cn, ORG_DESCRIPTIONS[cn])
        n_empty = 2 if self.n < 10_000 else 3
        minimums = [1 + _title_pool_minimum(len(d.titles)) for d in self.departments]
        wanted = max(self.n // 100, len(self.catalogue) + n_empty + sum(minimums))
        spare = wanted - len(self.catalogue) - n_empty - sum(minimums)
        for i, (dept, minimum) in enumerate(zip(self.departments, minimums, strict=True)):
            size = minimum + spare // len(self.departments) + (i < spare % len(self.departments))
            self._fill_department_pool(dept, size)
        taken = set(self.catalogue)
        while len(self.empty_groups) < n_empty:
            dept = self.rng.choice(self.departments)
            cn = f"{dept.prefix}-{self.rng.choice(dept.apps)}-legacy-{self.rng.choice(LEVELS)}"
            if cn not in taken:
                taken.add(cn)
                self.empty_groups.append(cn)
                self.descriptions[cn] = f"{dept.name}: retired application, kept for audit"

    def _fill_department_pool(self, dept: _Department, size: int) -> None:
        share = f"{dept.prefix}-share"
        self._add_grant(share, f"{dept.name} shared drive")
        dept.pool.append(share)
        plain = [(app, "", level) for app in dept.apps for level in LEVELS]
        scoped = [(app, scope, level) for app in dept.apps for scope in SCOPES for level in LEVELS]
        self.rng.shuffle(plain)
        self.rng.shuffle(scoped)
        # Unscoped names come first so small organisations get the most familiar permissions.
        for app, scope, level in (plain + scoped)[: size - 1]:
            cn = "-".join(part for part in (dept.prefix, app, scope, level) if part)
            where = f" ({scope})" if scope else ""
            self._add_grant(cn, f"{dept.name}: {app}{where} {level} access")
            dept.pool.append(cn)

    def _add_grant(self, cn: str, description: str) -> None:
        self.catalogue.append(cn)
        self.descriptions[cn] = description

    def _build_profiles(self) -> None:
        for dept in self.departments:
            share, rest = dept.pool[0], dept.pool[1:]
            usable = rest[: max(_title_pool_minimum(len(dept.titles)), min(len(rest), 3 * len(dept.titles)))]
            seen: set[frozenset[str]] = set()
            for i, title in enumerate(dept.titles):
                specific = self._title_grants(usable, i, seen)
                seen.add(specific)
                optional = [cn for cn in ORG_OPTIONAL if self.rng.random() < 0.6]
                self.profiles[(dept.name, title)] = frozenset((*ORG_CORE, *optional, share, *specific))

    def _title_grants(self, usable: Sequence[str], i: int, seen: set[frozenset[str]]) -> frozenset[str]:
        """A title's own grants: distinct from its department's other titles where possible."""
        size = min(len(usable), self.rng.randint(2, 4))
        # Round-robin seeding means every usable grant belongs to some profile.
        anchor = usable[i % len(usable)]
        for _ in range(20):
            others = [cn for cn in usable if cn != anchor]
            chosen = frozenset([anchor, *self.rng.sample(others, size - 1)])
            if chosen not in seen:
                return chosen
        for k in range(1, min(5, len(usable)) + 1):
            for combo in itertools.combinations(usable, k):
                if frozenset(combo) not in seen:
                    return frozenset(combo)
        return chosen

    def _build_people(self) -> None:
        profiles = list(self.profiles)
        dept_weight = {d.name: self.rng.uniform(0.5, 2.0) for d in self.departments}
        # Junior titles come first in each department and employ the most people.
        weights = [
            dept_weight[dept] * self.rng.uniform(0.6, 1.4) / (i + 1) ** 0.7
            for dept, titles in itertools.groupby(profiles, key=lambda p: p[0])
            for i, _ in enumerate(titles)
        ]
        for profile in self.rng.choices(profiles, weights=weights, k=self.n):
            given, sn = self.rng.choice(GIVEN_NAMES), self.rng.choice(SURNAMES)
            person = _Person(given, sn, self._allocate_uid(given, sn), profile)
            person.grants.update(self.profiles[profile])
            self.people.append(person)

    def _allocate_uid(self, given: str, sn: str) -> str:
        base = _ascii_letters(given)[:1] + _ascii_letters(sn)
        count = self.uid_counts.get(base, 0) + 1
        self.uid_counts[base] = count
        # Bases are letters only, so a numbered uid can never equal another base.
        return base if count == 1 else f"{base}{count}"

    def _gone_dn(self) -> str:
        """DN of a deleted account: a realistic uid that no generated person has."""
        uid = self._allocate_uid(self.rng.choice(GIVEN_NAMES), self.rng.choice(SURNAMES))
        return f"uid={uid},{self.people_dn}"

    def _fraction(self, share: float) -> int:
        return max(1, round(share * self.n))

    # -- noise

    def _plant_leavers(self) -> None:
        for i in sorted(self.rng.sample(range(self.n), self._fraction(0.02))):
            self.people[i].leaver = True
            self.planted["leaver"].append(self.people[i].uid)

    def _plant_movers(self) -> None:
        staying = [i for i, p in enumerate(self.people) if not p.leaver]
        profiles = list(self.profiles)
        for i in sorted(self.rng.sample(staying, self._fraction(0.03))):
            person = self.people[i]
            old = person.profile
            same_dept = [p for p in profiles if p[0] == old[0] and p != old]
            # Half the moves are promotions or sideways moves inside the department.
            if same_dept and self.rng.random() < 0.5:
                new = self.rng.choice(same_dept)
            else:
                new = self.rng.choice([p for p in profiles if p != old])
            person.previous, person.profile = old, new
            person.grants.update(self.profiles[new])
            self.planted["mover"].append((person.uid, old, new))

    def _role_cn(self, profile: Profile) -> str:
        prefix = next(d.prefix for d in self.departments if d.name == profile[0])
        return f"role-{prefix}-{_slug(profile[1])}"

    def _plant_roles(self) -> None:
        eligible: dict[Profile, list[int]] = {p: [] for p in self.profiles}
        for i, person in enumerate(self.people):
            if not person.leaver and person.previous is None:
                eligible[person.profile].append(i)
        order = {p: k for k, p in enumerate(self.profiles)}
        ranked = sorted(self.profiles, key=lambda p: (-len(eligible[p]), order[p]))
        for profile in ranked[: 2 if self.n < 1000 else 3]:
            cn = self._role_cn(profile)
            self.roles[cn] = profile
            holders = list(eligible[profile])
            self.rng.shuffle(holders)
            both = max(1, round(0.1 * len(holders)))
            only = min(len(holders) - both, max(1, round(0.4 * len(holders))))
            for k, i in enumerate(holders[: both + only]):
                person = self.people[i]
                person.roles.add(cn)
                if k >= both:
                    person.grants.difference_update(self.profiles[profile])

    def _plant_empty_groups(self) -> None:
        leavers = [p for p in self.people if p.leaver]
        for k, cn in enumerate(self.empty_groups):
            self.planted["empty_group"].append(cn)
            holders = leavers[:1] if k == 0 else leavers[:2] if k == 2 else []
            for person in holders:
                person.grants.add(cn)
            if k < 2:
                for _ in range(1 if k == 0 else self.rng.randint(1, 2)):
                    self._add_dangling(cn, self._gone_dn())

    def _add_dangling(self, cn: str, dn: str) -> None:
        self.extra_members.setdefault(cn, []).append(dn)
        self.planted["dangling"].append((cn, dn))

    def _plant_extras(self) -> None:
        slots = []
        for i in self.rng.sample(range(self.n), self._fraction(0.10)):
            slots.extend([i] * (2 if self.rng.random() < 0.4 else 1))
        unheld = self._unheld_grants()
        if len(slots) < len(unheld):
            # Every grant group needs a holder; widen the sample rather than leave one empty.
            spare = sorted(set(range(self.n)) - set(slots))
            slots.extend(self.rng.sample(spare, len(unheld) - len(slots)))
        for k, i in enumerate(slots):
            person = self.people[i]
            cn = unheld[k] if k < len(unheld) else self._outside_grant(person)
            person.grants.add(cn)
            self.planted["extra"].append((person.uid, cn))

    def _unheld_grants(self) -> list[str]:
        held: set[str] = set()
        for person in self.people:
            held.update(person.grants)
        for profile in self.roles.values():
            held.update(self.profiles[profile])
        return [cn for cn in self.catalogue if cn not in held]

    def _outside_grant(self, person: _Person) -> str:
        expected = set(self.profiles[person.profile]) | person.grants
        if person.previous is not None:
            expected |= self.profiles[person.previous]
        while True:
            cn = self.rng.choice(self.catalogue)
            if cn not in expected:
                return cn

    def _plant_dangling(self) -> None:
        count = max(1, round(0.01 * (len(self.catalogue) + len(self.empty_groups))))
        for cn in self.rng.sample(self.catalogue, count):
            for _ in range(self.rng.randint(1, 2)):
                self._add_dangling(cn, self._gone_dn())

    def _plant_nested(self) -> None:
        """Nest grant groups: one chain of two links plus separate pairs, so never a cycle."""
        holders: dict[str, set[int]] = {}
        for i, person in enumerate(self.people):
            for cn in person.grants:
                holders.setdefault(cn, set()).add(i)
        used: set[str] = set()
        chain = self._nesting_nodes(3, used, holders)
        pairs = [(chain[0], chain[1]), (chain[1], chain[2])]
        while len(pairs) < max(3, len(self.catalogue) // 60):
            parent, child = self._nesting_nodes(2, used, holders)
            pairs.append((parent, child))
        for parent, child in pairs:
            self.extra_members.setdefault(parent, []).append(f"cn={child},{self.grant_base}")
            self.planted["nested"].append((parent, child))

    def _nesting_nodes(self, count: int, used: set[str], holders: dict[str, set[int]]) -> list[str]:
        """Unused grants of one department, the weakest access level first (it becomes the parent)."""
        free = {d.name: [cn for cn in d.pool[1:] if cn not in used] for d in self.departments}
        eligible = [name for name, cns in free.items() if len(cns) >= count]
        for _ in range(50):
            nodes = self.rng.sample(free[self.rng.choice(eligible)], count)
            nodes.sort(key=lambda cn: LEVELS.index(cn.rsplit("-", 1)[1]))
            # A link only matters if some direct holder of the child lacks the parent.
            if all(holders.get(c, set()) - holders.get(p, set()) for p, c in itertools.pairwise(nodes)):
                break
        used.update(nodes)
        return nodes

    def _plant_unused_role(self) -> None:
        taken = set(self.roles.values())
        profile = self.rng.choice([p for p in self.profiles if p not in taken])
        cn = self._role_cn(profile)
        self.roles[cn] = profile
        # groupOfNames needs a member; the placeholder names no entry.
        self._add_dangling(cn, f"cn=nobody,{self.base_dn}")
        self.planted["unused_role"].append(cn)

    def _record_redundant(self) -> None:
        for person in self.people:
            for role in sorted(person.roles):
                for cn in sorted(self.profiles[self.roles[role]] & person.grants):
                    self.planted["redundant"].append((person.uid, cn))

    # -- output

    def _assemble(self) -> SampleOrg:
        members: dict[str, list[str]] = {cn: [] for cn in [*self.catalogue, *self.empty_groups, *self.roles]}
        users = []
        for number, person in enumerate(self.people, start=1):
            user = self._sample_user(person, number)
            users.append(user)
            for cn in sorted(person.grants):
                members[cn].append(user.dn)
            for cn in sorted(person.roles):
                members[cn].append(user.dn)
        for role, profile in sorted(self.roles.items()):
            for cn in sorted(self.profiles[profile]):
                members[cn].append(f"cn={role},{self.role_base}")
        for cn, extra in self.extra_members.items():
            members[cn].extend(extra)
        groups = [self._group(cn, ROLE, members[cn]) for cn in sorted(self.roles)]
        groups += [self._group(cn, GRANT, members[cn]) for cn in sorted([*self.catalogue, *self.empty_groups])]
        return SampleOrg(
            base_dn=self.base_dn,
            people_dn=self.people_dn,
            grant_base=self.grant_base,
            role_base=self.role_base,
            users=users,
            groups=groups,
            planted=self.planted,
            profiles=dict(self.profiles),
            role_profiles=dict(sorted(self.roles.items())),
        )

    def _sample_user(self, person: _Person, number: int) -> SampleUser:
        return SampleUser(
            uid=person.uid,
            dn=f"uid={person.uid},{self.people_dn}",
            cn=f"{person.given} {person.sn}",
            department=person.profile[0],
            title=person.profile[1],
            leaver=person.leaver,
            previous=person.previous,
            direct_grants=frozenset(person.grants),
            roles=frozenset(person.roles),
            given_name=person.given,
            sn=person.sn,
            mail=f"{person.uid}@{self.domain}",
            employee_number=f"{100000 + number}",
        )

    def _group(self, cn: str, kind: str, members: list[str]) -> SampleGroup:
        base = self.role_base if kind == ROLE else self.grant_base
        if kind == ROLE:
            dept, title = self.roles[cn]
            description = f"Role: {title}, {dept}"
        else:
            description = self.descriptions[cn]
        return SampleGroup(cn=cn, dn=f"cn={cn},{base}", kind=kind, members=tuple(members), description=description)


def _title_pool_minimum(titles: int) -> int:
    """Smallest title-grant pool whose small subsets can tell ``titles`` titles apart."""
    return 3 if titles <= 7 else 4


# ---------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Write a sample organisation as LDIF to a file or standard output."""
    parser = argparse.ArgumentParser(
        prog="python -m rbac_migrate.sampleorg",
        description="Generate a deterministic synthetic organisation as LDIF.",
    )
    parser.add_argument("--users", type=int, required=True, help=f"number of people (at least {MIN_USERS})")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--base-dn", default="dc=example,dc=org", help="directory suffix")
    parser.add_argument("-o", "--output", help="LDIF file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        org = generate(args.users, seed=args.seed, base_dn=args.base_dn)
    except ValueError as exc:
        parser.error(str(exc))
    org.write_ldif(args.output or sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
