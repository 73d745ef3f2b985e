"""The synthetic organisation: determinism, scale, planted noise and LDIF output."""

from __future__ import annotations

import base64
import io
import re
from collections import defaultdict
from functools import cache

import pytest

from rbac_migrate.demo import sampleorg
from rbac_migrate.demo.sampleorg import SampleOrg, generate

SIZES = (50, 1000, 20000)


@cache
def org(users: int, seed: int = 1, base_dn: str = "dc=example,dc=org") -> SampleOrg:
    return generate(users, seed=seed, base_dn=base_dn)


def ldif_text(o: SampleOrg, include_base: bool = True) -> str:
    buffer = io.StringIO()
    o.write_ldif(buffer, include_base=include_base)
    return buffer.getvalue()


def parse_ldif(text: str) -> list[tuple[str, dict[str, list[str]]]]:
    """Minimal RFC 2849 content parser: no folding, no URLs, no change records."""
    assert text.endswith("\n\n")
    entries = []
    for block in text[:-2].split("\n\n"):
        attrs: dict[str, list[str]] = defaultdict(list)
        for line in block.split("\n"):
            attr, sep, rest = line.partition(":")
            assert sep, line
            if rest.startswith(":"):
                value = base64.b64decode(rest[1:].strip(), validate=True).decode("utf-8")
            else:
                assert rest.startswith(" "), line
                value = rest[1:]
            attrs[attr].append(value)
        (dn,) = attrs.pop("dn")
        assert block.startswith("dn:")
        entries.append((dn, dict(attrs)))
    return entries


_CONTAINING: dict[int, tuple[SampleOrg, dict[str, list]]] = {}


def containing(o: SampleOrg) -> dict[str, list]:
    """Member value -> the groups listing it, from the groups alone."""
    if id(o) not in _CONTAINING:
        index: dict[str, list] = defaultdict(list)
        for group in o.groups:
            for member in group.members:
                index[member].append(group)
        # Keeping the org alive stops its id being reused by another one.
        _CONTAINING[id(o)] = (o, index)
    return _CONTAINING[id(o)][1]


def closure(o: SampleOrg, start_dn: str) -> frozenset[str]:
    """Grant cns reachable from a DN by following member values upwards."""
    reached, stack, seen = set(), [start_dn], {start_dn}
    while stack:
        for group in containing(o).get(stack.pop(), ()):
            if group.dn not in seen:
                seen.add(group.dn)
                stack.append(group.dn)
                if group.kind == "grant":
                    reached.add(group.cn)
    return frozenset(reached)


def grant_groups(o: SampleOrg) -> list:
    return [g for g in o.groups if g.kind == "grant"]


def test_same_seed_gives_identical_ldif():
    first = ldif_text(generate(1000, seed=7))
    assert first == ldif_text(generate(1000, seed=7))
    assert first == "".join(generate(1000, seed=7).ldif_entries())


def test_different_seed_gives_different_ldif():
    assert ldif_text(org(50, seed=1)) != ldif_text(org(50, seed=2))


@pytest.mark.parametrize("users", SIZES)
def test_scale(users):
    o = org(users)
    grants = grant_groups(o)
    assert len(o.users) == users
    assert 30 <= len(grants) <= max(80, users // 100 * 1.2)
    member_values = sum(len(g.members) for g in grants)
    assert 8 <= member_values / users <= 12
    assert 8 <= len({d for d, _ in o.profiles}) <= 20
    for dept in {d for d, _ in o.profiles}:
        assert 3 <= sum(1 for d, _ in o.profiles if d == dept) <= 8
    assert all(5 <= len(grants) <= 12 for grants in o.profiles.values())
    assert len(set(o.profiles.values())) == len(o.profiles)


@pytest.mark.parametrize("users", SIZES)
def test_noise_rates(users):
    planted = org(users).planted
    assert len(planted["leaver"]) == max(1, round(0.02 * users))
    assert len(planted["mover"]) == max(1, round(0.03 * users))
    assert len({uid for uid, _ in planted["extra"]}) >= round(0.1 * users)
    assert 1 <= len(planted["empty_group"]) <= 3
    assert len(planted["unused_role"]) == 1


def test_every_category_planted_at_smallest_size():
    o = org(50)
    assert set(o.planted) >= {"extra", "mover", "leaver", "dangling", "empty_group", "unused_role", "redundant"}
    assert all(o.planted[category] for category in o.planted)


@pytest.mark.parametrize("users", (50, 1000))
def test_planted_items_are_in_the_data(users):
    o = org(users)
    users_by_uid = {u.uid: u for u in o.users}
    groups = {g.cn: g for g in o.groups}
    user_dns = {u.dn for u in o.users}
    existing = user_dns | {g.dn for g in o.groups}
    for uid, cn in o.planted["extra"]:
        user = users_by_uid[uid]
        assert cn in user.direct_grants
        assert cn not in o.profiles[(user.department, user.title)]
        assert user.previous is None or cn not in o.profiles[user.previous]
    for uid, old, new in o.planted["mover"]:
        user = users_by_uid[uid]
        assert user.previous == old != new == (user.department, user.title)
        assert o.profiles[old] | o.profiles[new] <= user.direct_grants
    assert sorted(o.planted["leaver"]) == sorted(u.uid for u in o.users if u.leaver)
    assert all(users_by_uid[uid].direct_grants for uid in o.planted["leaver"])
    dangling = set()
    for cn, dn in o.planted["dangling"]:
        assert dn in groups[cn].members and dn not in existing
        assert (dn.startswith("uid=") and dn.endswith("," + o.people_dn)) or dn == f"cn=nobody,{o.base_dn}"
        dangling.add(dn)
    assert sum(1 for cn, _ in o.planted["dangling"] if cn not in o.planted["empty_group"]) >= 2
    leaver_dns = {users_by_uid[uid].dn for uid in o.planted["leaver"]}
    for cn in o.planted["empty_group"]:
        assert groups[cn].kind == "grant"
        assert set(groups[cn].members) <= dangling | leaver_dns


@pytest.mark.parametrize("users", (50, 1000))
def test_planted_roles(users):
    o = org(users)
    users_by_uid = {u.uid: u for u in o.users}
    groups = {g.cn: g for g in o.groups}
    (unused,) = o.planted["unused_role"]
    assert groups[unused].kind == "role"
    assert groups[unused].members == (f"cn=nobody,{o.base_dn}",)
    assert any(groups[unused].dn in g.members for g in grant_groups(o))
    for uid, cn in o.planted["redundant"]:
        user = users_by_uid[uid]
        assert cn in user.direct_grants
        assert any(groups[role].dn in groups[cn].members for role in user.roles)
    migrated = [u for u in o.users if u.roles and not u.direct_grants & o.profiles[(u.department, u.title)]]
    assert migrated, "some role holders must have had their direct grants removed"
    for role, profile in o.role_profiles.items():
        granted = {g.cn for g in grant_groups(o) if groups[role].dn in g.members}
        assert granted == o.profiles[profile]


@pytest.mark.parametrize("users", (50, 1000))
def test_nested_groups_form_no_cycle(users):
    o = org(users)
    groups = {g.cn: g for g in o.groups}
    assert len(o.planted["nested"]) >= 3
    for parent, child in o.planted["nested"]:
        assert groups[child].dn in groups[parent].members
    edges = {(p.cn, c.cn) for p in o.groups for c in o.groups if c.dn in p.members}
    assert edges == set(o.planted["nested"]) | {(g, r) for g, r in edges if groups[r].kind == "role"}
    assert any(c1 == p2 for _, c1 in o.planted["nested"] for p2, _ in o.planted["nested"]), "a chain"
    for group in o.groups:
        assert group.cn not in closure(o, group.dn)


@pytest.mark.parametrize("users", (50, 1000))
def test_effective_grants_match_closure(users):
    o = org(users)
    for user in o.users:
        assert o.effective_grants(user.uid) == closure(o, user.dn), user.uid


def test_effective_grants_follow_roles_and_nesting():
    o = org(50)
    assert any(o.effective_grants(u.uid) > u.direct_grants for u in o.users if u.roles)
    inherited = [
        (user.uid, parent)
        for parent, child in o.planted["nested"]
        for user in o.users
        if child in user.direct_grants and parent not in user.direct_grants
    ]
    assert inherited
    assert all(parent in o.effective_grants(uid) for uid, parent in inherited)
    with pytest.raises(KeyError):
        o.effective_grants("nosuchuser")


@pytest.mark.parametrize("users", SIZES)
def test_structure(users):
    o = org(users)
    dns = [o.base_dn, o.people_dn] + [u.dn for u in o.users] + [g.dn for g in o.groups]
    assert len({dn.lower() for dn in dns}) == len(dns)
    assert all(u.dn == f"uid={u.uid},{o.people_dn}" for u in o.users)
    assert all(re.fullmatch(r"[a-z]+[0-9]*", u.uid) for u in o.users)
    for group in o.groups:
        base = o.grant_base if group.kind == "grant" else o.role_base
        assert group.dn == f"cn={group.cn},{base}"
        assert group.members
        assert len(set(group.members)) == len(group.members)
    assert o.role_base == f"ou=roles,ou=groups,{o.base_dn}"
    assert o.grant_base == f"ou=grants,ou=groups,{o.base_dn}"


@pytest.mark.parametrize("users", (50, 1000))
def test_user_fields_match_member_lists(users):
    o = org(users)
    holding: dict[str, set[str]] = defaultdict(set)
    for group in o.groups:
        for member in group.members:
            holding[member].add(group.cn)
    for user in o.users:
        assert holding[user.dn] == user.direct_grants | user.roles


@pytest.mark.parametrize("users", (50, 1000))
def test_ldif_round_trip(users):
    o = org(users)
    entries = parse_ldif(ldif_text(o))
    assert [dn for dn, _ in entries[:5]] == [
        o.base_dn,
        o.people_dn,
        f"ou=groups,{o.base_dn}",
        o.grant_base,
        o.role_base,
    ]
    assert entries[0][1] == {"objectClass": ["top", "dcObject", "organization"], "dc": ["example"], "o": ["Example"]}
    parsed = dict(entries)
    assert len(parsed) == len(entries) == 5 + len(o.users) + len(o.groups)
    for user in o.users:
        attrs = parsed[user.dn]
        assert "inetOrgPerson" in attrs["objectClass"]
        assert attrs["uid"] == [user.uid] and attrs["cn"] == [user.cn]
        assert attrs["departmentNumber"] == [user.department] and attrs["title"] == [user.title]
        assert attrs.get("employeeType") == (["leaver"] if user.leaver else None)
        assert set(attrs) >= {"sn", "givenName", "mail", "employeeNumber"}
    for group in o.groups:
        attrs = parsed[group.dn]
        assert attrs["objectClass"] == ["top", "groupOfNames"] and attrs["cn"] == [group.cn]
        assert tuple(attrs["member"]) == group.members


def test_non_ascii_names_are_base64_encoded():
    text = ldif_text(org(1000))
    assert text.isascii()
    assert "\ncn:: " in text
    assert any(not u.cn.isascii() for u in org(1000).users)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("plain value", False),
        ("uid=a,dc=x", False),
        (" leading space", True),
        (":colon", True),
        ("<angle", True),
        ("trailing ", True),
        ("Zoë", True),
        ("line\nbreak", True),
    ],
)
def test_ldif_line_encoding(value, encoded):
    line = sampleorg.ldif_line("cn", value)
    assert line.startswith("cn:: ") == encoded
    assert line.endswith("\n") and line.count("\n") == 1
    if encoded:
        assert base64.b64decode(line[5:]).decode("utf-8") == value


def test_include_base_false_omits_only_the_base_entry():
    o = org(50)
    with_base = parse_ldif(ldif_text(o))
    without = parse_ldif(ldif_text(o, include_base=False))
    assert without == with_base[1:]


def test_write_to_path_and_binary_stream(tmp_path):
    o = org(50)
    path = tmp_path / "org.ldif"
    o.write_ldif(path)
    binary = io.BytesIO()
    o.write_ldif(binary)
    assert path.read_bytes() == binary.getvalue() == ldif_text(o).encode("ascii")


@pytest.mark.parametrize(
    ("base_dn", "classes", "attr"),
    [
        ("ou=acme,o=corp", ["top", "organizationalUnit"], "ou"),
        ("o=Acme Corp", ["top", "organization"], "o"),
        ("DC=acme, DC=test", ["top", "dcObject", "organization"], "dc"),
    ],
)
def test_other_base_dns(base_dn, classes, attr):
    o = generate(50, base_dn=base_dn)
    base, attrs = parse_ldif(ldif_text(o))[0]
    assert base == o.base_dn == sampleorg.normalise_base_dn(base_dn)
    assert attrs["objectClass"] == classes and attr in attrs
    assert all(u.dn.endswith("," + o.base_dn) for u in o.users)


def test_mail_domain_follows_dc_base():
    assert generate(50, base_dn="dc=acme,dc=test").users[0].mail.endswith("@acme.test")


@pytest.mark.parametrize("base_dn", ["cn=x,dc=org", "dc=a\\,b,dc=org", "dc=", "dc=x+o=y"])
def test_unsupported_base_dn_rejected(base_dn):
    with pytest.raises(ValueError):
        generate(50, base_dn=base_dn)


def test_too_few_users_rejected():
    with pytest.raises(ValueError):
        generate(49)


def test_main_writes_file_and_stdout(tmp_path, capsys):
    path = tmp_path / "out.ldif"
    assert sampleorg.main(["--users", "50", "--seed", "3", "-o", str(path)]) == 0
    assert path.read_text() == ldif_text(generate(50, seed=3))
    assert sampleorg.main(["--users", "50", "--base-dn", "ou=lab,dc=example,dc=org"]) == 0
    assert capsys.readouterr().out == ldif_text(generate(50, base_dn="ou=lab,dc=example,dc=org"))
