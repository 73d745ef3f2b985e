"""Reading "user permission" pairs, the plain exchange format of role-mining data sets."""

from __future__ import annotations

import os
from collections.abc import Iterable


def read_pairs(source: str | os.PathLike[str] | Iterable[str]) -> dict[str, set[str]]:
    """Read one ``user permission`` pair per line into a user -> permissions mapping.

    ``source`` is a path (``str`` or path-like, UTF-8 with or without a byte-order mark) or an
    iterable of lines. Fields are separated by a comma or by whitespace; blank lines and lines
    starting with ``#`` are skipped. A line that is not exactly two fields raises ``ValueError``
    naming its line number.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8-sig") as handle:
            return _parse(handle)
    return _parse(source)


def _parse(lines: Iterable[str]) -> dict[str, set[str]]:
    access: dict[str, set[str]] = {}
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        user, permission = _split(text, number)
        access.setdefault(user, set()).add(permission)
    return access


def _split(text: str, number: int) -> tuple[str, str]:
    fields = [part.strip() for part in text.split(",")] if "," in text else text.split()
    if len(fields) != 2 or not all(fields):
        raise ValueError(f"line {number}: expected 'user permission', got {text!r}")
    return fields[0], fields[1]
