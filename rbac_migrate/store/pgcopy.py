"""Rows as PostgreSQL's COPY text format, built a column at a time.

A snapshot hands PostgreSQL a hundred thousand rows at once. Converting value by value in Python
would cost more than the database spends storing them, so each column is converted with one
C-level pass where its type allows (``map(str, ...)``, a join checked once for characters that need
escaping), and the rows are then joined with tabs and newlines.

The format (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format"): columns
separated by a tab, rows ended by a newline, ``\\N`` for NULL, and a backslash, tab, newline or
carriage return inside a value written as ``\\\\``, ``\\t``, ``\\n``, ``\\r``. A bytea value is
written in its hex form, ``\\x`` and two digits a byte, whose backslash is itself escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = ("\\", "\t", "\n", "\r")
_BOOLEANS = {True: "t", False: "f", None: NULL}
_NONE = type(None)


def copy_text(rows: Sequence[tuple], constants: Sequence[int] = ()) -> bytes:
    """The rows (each preceded by the ``constants``) as COPY text, encoded as UTF-8."""
    if not rows:
        return b""
    count = len(rows)
    columns = [[str(int(value))] * count for value in constants]
    columns += [_column(values) for values in zip(*rows, strict=True)]
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()


def _column(values: tuple) -> list[str] | tuple[str, ...]:
    """One column's values as text."""
    kinds = set(map(type, values))
    if kinds == {int}:
        return list(map(str, values))
    if kinds <= {bool, _NONE}:
        return list(map(_BOOLEANS.__getitem__, values))
    if kinds <= {str, _NONE}:
        present = [value for value in values if value is not None] if _NONE in kinds else values
        joined = "".join(present)
        if any(special in joined for special in _SPECIAL):
            return [NULL if value is None else _escaped(value) for value in values]
        return [NULL if value is None else value for value in values] if _NONE in kinds else values
    return [_text(value) for value in values]


def _escaped(value: str) -> str:
    return value.translate(_ESCAPES) if any(special in value for special in _SPECIAL) else value


def _text(value) -> str:
    """One value of any type the store writes."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return _BOOLEANS[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\\\x" + bytes(value).hex()
    return _escaped(str(value))
