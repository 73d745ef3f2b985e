"""The HR feed: a CSV of current staff ids, with or without a header row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..errors import RbacMigrateError

# Header names that hold the account id, compared case-insensitively.
ID_COLUMNS = ("id", "uid", "employee", "samaccountname")


class FeedError(RbacMigrateError):
    """The HR feed cannot be read or holds no ids."""


def parse_hr_feed(text: str) -> set[str]:
    """Staff ids from CSV text: the column named like an id, else the first column."""
    rows = [row for row in csv.reader(io.StringIO(text), _dialect(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return set()
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in ID_COLUMNS if name in header), None)
    if column is not None:
        rows = rows[1:]
    ids = {row[column or 0].strip() for row in rows if len(row) > (column or 0)}
    return {i for i in ids if i}


def _dialect(text: str) -> type[csv.Dialect]:
    """Comma, semicolon (spreadsheets in many locales) or tab; one column needs no sniffing."""
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        return csv.excel


def read_hr_feed(path: Path) -> set[str]:
    """Ids from a feed file; an empty feed is an error, since it would flag every account."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FeedError(f"cannot read HR feed {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")  # spreadsheets often start the file with a byte-order mark
    except UnicodeDecodeError:
        raise FeedError(f"HR feed {path} is not UTF-8 text") from None
    ids = parse_hr_feed(text)
    if not ids:
        raise FeedError(f"HR feed {path} holds no staff ids")
    return ids
