"""The read operations every directory connection offers, built on its ``search_raw``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import DirectoryError
from . import values

FOREIGN_PRINCIPAL = "foreignsecurityprincipal"


def stands_for_someone(attrs: dict[str, list[str]] | None) -> bool:
    """An entry read with its objectClass that exists and is no foreign-security-principal placeholder."""
    return attrs is not None and FOREIGN_PRINCIPAL not in {c.lower() for c in attrs.get("objectclass", [])}


def could_name_entries(texts: Iterable[str]) -> list[str]:
    """The texts that could be DNs of entries: a DN holds at least one ``attribute=value``. A member
    value such as a bare name names nothing, and costs no search."""
    return [text for text in texts if "=" in text]


class Reads:
    """Searches decoded to text, single entries, the root DSE and base checks.

    A subclass provides ``search_raw(base, filter, attributes, scope, paged, size_limit)``
    yielding ``(dn, {attribute as the server names it: [raw values]})``, and ``target``.
    """

    target: str

    # Raw-value helpers, reachable from callers that must not import a directory library themselves.
    first_values = staticmethod(values.first_values)
    attribute_key = staticmethod(values.attribute_key)
    decode_value = staticmethod(values.decode_value)

    def search_raw(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        scope: str = "subtree",
        paged: bool = True,
        size_limit: int = 0,
        page_size: int | None = None,
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """Yield (dn, {attribute as the server names it: [raw values]}), for bulk reads; paged reads
        ask ``page_size`` entries at a time (default: the ``page_size`` setting)."""
        raise NotImplementedError

    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Iterable[str],
        scope: str = "subtree",
        paged: bool = True,
        size_limit: int = 0,
    ) -> Iterator[tuple[str, dict[str, list[str]]]]:
        """Yield (dn, {lower-case attribute: [text values]}); a missing base yields nothing."""
        for dn, raw in self.search_raw(base, search_filter, attributes, scope, paged, size_limit):
            yield dn, values.decode(raw)

    def root_dse(self) -> dict[str, list[str]]:
        for _dn, attrs in self.search("", "(objectClass=*)", ["*", "+"], scope="base", paged=False):
            return attrs
        return {}

    def read_entry(self, dn: str, attributes: Iterable[str]) -> dict[str, list[str]] | None:
        """One entry's attributes, or None when it does not exist."""
        for _dn, attrs in self.search(dn, "(objectClass=*)", attributes, scope="base", paged=False):
            return attrs
        return None

    def exists(self, dn: str) -> bool:
        """True when an entry with this DN exists (and is visible to us)."""
        return any(True for _ in self.search_raw(dn, "(objectClass=*)", ["1.1"], scope="base", paged=False))

    def resolves(self, dn: str) -> bool:
        """True when a member value names an entry here that stands for someone we can see.

        AD keeps members from other domains, and SIDs nobody can resolve any more, as
        foreign-security-principal placeholders: entries that name no account in this directory.
        """
        return stands_for_someone(self.read_entry(dn, ["objectClass"]))

    def resolving(self, dns: Iterable[str]) -> set[str]:
        """Which of these DNs ``resolves``: one search each here; a connection that can have many
        searches in flight at once answers them together. A text that names no entry at all
        (no ``attribute=value``) is not asked about."""
        return {dn for dn in could_name_entries(dns) if self.resolves(dn)}

    def check_base(self, name: str, base: str) -> None:
        """Fail with one line when a configured base DN does not exist."""
        if not self.exists(base):
            raise DirectoryError(f"{name} {base} does not exist on {self.target}")
