"""The directory edge: the only package that talks to LDAP servers.

Everything above it sees plain strings and dicts: ``Directory.search`` yields ``(dn, attributes)``
with attribute names in lower case and values decoded to text. ``connection`` holds the ldap3
connection every writing command uses; it loads on first use, so a snapshot that reads through
libldap alone (``libldap``) never pays for importing ldap3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .address import parse_url
from .values import attribute_key, decode_value, first_values

if TYPE_CHECKING:
    from .connection import Directory, ServerCapabilities, connect, escape_filter_chars

__all__ = [
    "Directory",
    "ServerCapabilities",
    "attribute_key",
    "connect",
    "decode_value",
    "escape_filter_chars",
    "first_values",
    "parse_url",
]
_FROM_CONNECTION = {"Directory", "ServerCapabilities", "connect", "escape_filter_chars"}


def __getattr__(name: str):
    if name in _FROM_CONNECTION:
        from . import connection

        return getattr(connection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
