"""Distinguished names: comparison form and subtree tests, without a directory."""

from __future__ import annotations

import re

# A separator not preceded by an odd number of backslashes.
_SEPARATORS = {sep: re.compile(r"(?<!\\)((?:\\\\)*)" + re.escape(sep)) for sep in ",+;"}
# One escape: a backslash and two hex digits (a byte of UTF-8), or a backslash and any character.
_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2})|\\(.)", re.DOTALL)
# RFC 4514: characters escaped anywhere in a value, and those escaped only at its ends.
_SPECIAL = frozenset('"+,;<>\\')


def split_rdns(dn: str) -> list[str]:
    """Split a DN into its RDN strings, honouring backslash escapes."""
    return _split_unescaped(dn, ",")


def normalize(dn: str) -> str:
    """Comparison form: lower case, no spaces around '=', ',' and '+', escapes in one spelling.

    Escapes are decoded and then written again the same way every time, so ``uid=\\68dunn``
    equals ``uid=hdunn`` and ``cn=a\\2cb`` equals ``cn=a\\,b``, while an escaped comma never
    turns into an RDN separator.
    """
    if not dn:
        return ""
    # The common case, and a million member values make it hot: nothing to parse without an
    # escape, a multi-valued RDN or spaces around a separator (plain substring tests, the fastest).
    if dn == dn.strip() and not ("\\" in dn or "+" in dn or " ," in dn or " =" in dn or ", " in dn or "= " in dn):
        return dn.lower()
    return _parsed(dn)


def _parsed(dn: str) -> str:
    """``normalize`` the long way: every RDN and value parsed and written again."""
    rdns = []
    for rdn in split_rdns(dn):
        avas = []
        for ava in _split_unescaped(rdn, "+"):
            attr, _, value = ava.partition("=")
            value = _escape(unescape(_strip_value(value), "surrogateescape"))
            avas.append(f"{attr.strip().lower()}={value.lower()}")
        rdns.append("+".join(sorted(avas)))
    return ",".join(rdns)


def _strip_value(value: str) -> str:
    """The value without the unescaped spaces around it; a trailing space stays when escaped."""
    value = value.lstrip()
    stripped = value.rstrip()
    if len(stripped) < len(value) and _ends_in_escape(stripped):
        stripped += " "
    return stripped


def _ends_in_escape(text: str) -> bool:
    """True when the last character is a backslash that escapes what follows it."""
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def unescape(value: str, errors: str = "backslashreplace") -> str:
    """An attribute value with its backslash escapes decoded: ``\\68`` → ``h``, ``\\,`` → ``,``.

    Hex escapes are bytes of UTF-8 (``\\c3\\a9`` → ``é``); bytes that are not UTF-8 are
    handled by ``errors`` (shown as ``\\xNN`` by default).
    """
    if "\\" not in value:
        return value
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(value):
        out += value[pos : match.start()].encode("utf-8")
        out += bytes.fromhex(match.group(1)) if match.group(1) else match.group(2).encode("utf-8")
        pos = match.end()
    out += value[pos:].encode("utf-8")
    return out.decode("utf-8", errors=errors)


def _escape(value: str) -> str:
    """The one spelling of a decoded value (RFC 4514 section 2.4)."""
    escaped = "".join(_escape_char(c) for c in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not _ends_in_escape(escaped[:-1]):
        escaped = escaped[:-1] + "\\ "
    return escaped


def _escape_char(char: str) -> str:
    if char in _SPECIAL:
        return "\\" + char
    if char == "\0" or "\udc80" <= char <= "\udcff":  # NUL, or a byte that is not UTF-8
        return f"\\{ord(char) & 0xFF:02x}"
    return char


def is_within(dn: str, base: str) -> bool:
    """True when dn is base itself or lies in base's subtree."""
    dn_n, base_n = normalize(dn), normalize(base)
    if dn_n == base_n:
        return True
    # The comma before the base must separate RDNs: 'cn=x\\,ou=grants,…' is not under ou=grants.
    return dn_n.endswith("," + base_n) and not _ends_in_escape(dn_n[: -len(base_n) - 1])


def first_value(dn: str) -> str:
    """The value of the first RDN, unescaped: 'cn=fin-read,ou=grants' → 'fin-read'."""
    first = split_rdns(dn)[0]
    return unescape(first.partition("=")[2].strip())


_RDN_START = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)\s*=")


def split_list(text: str) -> list[str]:
    """Items of a list setting written as one string, never cut inside a DN.

    Items are separated by ';', or by ',' where the comma does not continue a DN: in
    'alice, uid=hdunn,ou=people,dc=example,dc=org; bob' the DN stays whole. A comma continues
    a DN when the DN so far and the text after the comma both read 'attr=value', except that
    an RDN other than dc= after the DN's dc= components starts the next DN. Escaped separators
    ('\\,', '\\;') never split.
    """
    items: list[str] = []
    for part in _split_unescaped(text, ";"):
        current: str | None = None
        for token in _split_unescaped(part, ","):
            if current is not None and _continues_dn(current, token):
                current += "," + token
                continue
            if current is not None:
                items.append(current)
            current = token
        if current is not None:
            items.append(current)
    return [item.strip() for item in items if item.strip()]


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on each separator that no backslash escapes."""
    parts, start = [], 0
    for match in _SEPARATORS[separator].finditer(text):
        parts.append(text[start : match.end(1)])
        start = match.end()
    parts.append(text[start:])
    return parts


def _continues_dn(current: str, token: str) -> bool:
    first, nxt = _RDN_START.match(current), _RDN_START.match(token)
    if first is None or nxt is None:
        return False
    last = _RDN_START.match(split_rdns(current)[-1])
    return not (last and last.group(1).lower() == "dc" and nxt.group(1).lower() != "dc")
