"""Distinguished names: comparison form and subtree tests, without a directory."""

from __future__ import annotations

import re

# A separator is a ',' or '+' not preceded by an odd number of backslashes.
_SEPARATOR = re.compile(r"(?<!\\)((?:\\\\)*)([,+])")
_NEEDS_PARSING = re.compile(r"[\\+]| [,=]|[,=] ")


def split_rdns(dn: str) -> list[str]:
    """Split a DN into its RDN strings, honouring backslash escapes."""
    parts, start = [], 0
    for match in _SEPARATOR.finditer(dn):
        if match.group(2) == ",":
            end = match.end(1)
            parts.append(dn[start:end])
            start = match.end()
    parts.append(dn[start:])
    return parts


def normalize(dn: str) -> str:
    """Comparison form: lower case, no spaces around '=', ',' and '+'."""
    if not dn:
        return ""
    if not _NEEDS_PARSING.search(dn) and dn == dn.strip():
        return dn.lower()  # the common case, and a million member values make it hot
    rdns = []
    for rdn in split_rdns(dn):
        avas = []
        for ava in _split_avas(rdn):
            attr, _, value = ava.partition("=")
            avas.append(f"{attr.strip().lower()}={_strip_value(value)}")
        rdns.append("+".join(sorted(avas)))
    return ",".join(rdns)


def _split_avas(rdn: str) -> list[str]:
    parts, start = [], 0
    for match in _SEPARATOR.finditer(rdn):
        if match.group(2) == "+":
            parts.append(rdn[start : match.end(1)])
            start = match.end()
    parts.append(rdn[start:])
    return parts


def _strip_value(value: str) -> str:
    value = value.lstrip()
    # A trailing space is significant only when escaped.
    stripped = value.rstrip()
    if stripped.endswith("\\") and len(stripped) < len(value):
        stripped += " "
    return stripped.lower()


def is_within(dn: str, base: str) -> bool:
    """True when dn is base itself or lies in base's subtree."""
    dn_n, base_n = normalize(dn), normalize(base)
    return dn_n == base_n or dn_n.endswith("," + base_n)


def first_value(dn: str) -> str:
    """The value of the first RDN, unescaped: 'cn=fin-read,ou=grants' → 'fin-read'."""
    first = split_rdns(dn)[0]
    value = first.partition("=")[2].strip()
    return re.sub(r"\\(.)", r"\1", value)
