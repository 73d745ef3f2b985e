"""DN comparison form: escapes in any spelling compare equal, escaped separators never split."""

from __future__ import annotations

import pytest

from rbac_migrate.dn import first_value, is_within, normalize, split_list

HDUNN = "uid=hdunn,ou=people,dc=example,dc=org"


@pytest.mark.parametrize(
    "spelling",
    [
        HDUNN,
        "UID=HDunn,OU=People,DC=example,DC=org",
        "uid = hdunn , ou=people, dc=example,dc=org",
        r"uid=\68dunn,ou=people,dc=example,dc=org",  # hex escape of 'h'
        r"uid=\68\64\75\6e\6e,ou=\70eople,dc=example,dc=org",
        r"uid=\hdunn,ou=people,dc=example,dc=org",  # a needless backslash escape
        r"uid=hdunn,ou=people,dc=ex\61mple,dc=org",
    ],
)
def test_escaped_spellings_of_one_dn_compare_equal(spelling):
    assert normalize(spelling) == normalize(HDUNN) == HDUNN


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (r"cn=a\2cb,dc=x", r"cn=a\,b,dc=x"),  # an escaped comma, in hex or not
        (r"cn=a\2Bb,dc=x", r"cn=a\+b,dc=x"),
        (r"cn=caf\c3\a9,dc=x", "cn=café,dc=x"),  # hex escapes are UTF-8 bytes
        (r"cn=x\20,dc=x", r"cn=x\ ,dc=x"),  # a significant trailing space
        (r"cn=\20x,dc=x", r"cn=\ x,dc=x"),
        (r"cn=\23x,dc=x", r"cn=\#x,dc=x"),
        (r"cn=a\5cb,dc=x", r"cn=a\\b,dc=x"),
    ],
)
def test_every_escape_has_one_spelling(one, other):
    assert normalize(one) == normalize(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (r"cn=a\,ou=b,dc=x", "cn=a,ou=b,dc=x"),  # an escaped comma is not an RDN separator
        (r"cn=a\2c ou=b,dc=x", "cn=a,ou=b,dc=x"),
        (r"cn=a\+sn=b,dc=x", "cn=a+sn=b,dc=x"),
        (r"cn=x\ ,dc=x", "cn=x,dc=x"),  # an escaped trailing space is part of the value
        (r"cn=\ff,dc=x", r"cn=\5cxff,dc=x"),  # a byte that is not UTF-8 is not the text '\xff'
        (r"cn=a\5c,ou=b,dc=x", r"cn=a\,ou=b,dc=x"),
    ],
)
def test_different_dns_stay_different(one, other):
    assert normalize(one) != normalize(other)


def test_an_escaped_comma_never_puts_a_dn_under_a_base():
    base = "ou=grants,dc=example,dc=org"
    assert is_within(r"cn=fin-read,ou=gr\61nts,dc=example,dc=org", base)
    assert is_within(base.upper(), base)
    assert not is_within(r"cn=evil\,ou=grants,dc=example,dc=org", base)  # cn='evil,ou=grants' under dc=example
    assert not is_within(r"cn=evil\2cou=grants,dc=example,dc=org", base)
    assert not is_within("cn=x,ou=grantsx,dc=example,dc=org", base)


def test_first_value_decodes_escapes():
    assert first_value(r"uid=\68dunn,ou=people,dc=example,dc=org") == "hdunn"
    assert first_value(r"cn=Smith\2c John,ou=people") == "Smith, John"
    assert first_value(r"cn=caf\c3\a9,ou=x") == "café"


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (HDUNN, [HDUNN]),
        (f"alice, {HDUNN}; bob", ["alice", HDUNN, "bob"]),
        (f"alice,{HDUNN},bob", ["alice", HDUNN, "bob"]),
        (f"{HDUNN}, uid=bob,ou=people,dc=example,dc=org", [HDUNN, "uid=bob,ou=people,dc=example,dc=org"]),
        (f"{HDUNN};uid=bob,ou=people,dc=example,dc=org;", [HDUNN, "uid=bob,ou=people,dc=example,dc=org"]),
        ("CN=svc,OU=Service Accounts,DC=corp,DC=com", ["CN=svc,OU=Service Accounts,DC=corp,DC=com"]),
        (r"cn=Smith\, John,ou=people,dc=x; carol", [r"cn=Smith\, John,ou=people,dc=x", "carol"]),
        ("departmentNumber, title", ["departmentNumber", "title"]),
        (" ; , ", []),
    ],
)
def test_split_list_never_cuts_inside_a_dn(text, items):
    assert split_list(text) == items


def test_the_quick_path_gives_what_parsing_gives():
    """Random well-formed DNs, spaced and escaped in every way: normalize's quick path never
    skips the parsing a DN needs."""
    import random

    from rbac_migrate.dn import _parsed, normalize

    rng = random.Random(4514)
    pad = ["", "", " ", "  "]
    values = ["a", "Bob", "x\\,y", "x\\2cy", "é", "a b", "\\ lead", "trail\\ ", "x\\+y"]

    def ava() -> str:
        return (
            f"{rng.choice(pad)}{rng.choice(['uid', 'CN', 'ou'])}{rng.choice(pad)}={rng.choice(pad)}{rng.choice(values)}"
        )

    for _ in range(20000):
        rdns = ["+".join(ava() for _ in range(rng.choice([1, 1, 1, 2]))) for _ in range(rng.randrange(1, 4))]
        text = ",".join(rdn + rng.choice(pad) for rdn in rdns)
        assert normalize(text) == _parsed(text), text
