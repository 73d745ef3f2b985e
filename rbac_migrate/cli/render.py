"""One renderer for every listing: table, json or csv on stdout; and safe, owner-only output files.

Output is safe to open: CSV cells that a spreadsheet would run as a formula are neutralised
(OWASP's rule), control characters from directory data are escaped before they reach a
terminal, and files are written owner-only through a fresh temporary file, never through a
link someone placed in the way.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ..errors import RbacMigrateError

FORMATS = ("table", "json", "csv")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def format_option(*formats: str):
    """The shared --format option of listing commands: table, json and csv always, plus any extra."""
    choices = list(FORMATS) + [f for f in formats if f not in FORMATS]
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="table",
        show_default=True,
        help="Output format.",
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value


def emit(rows: Sequence[dict], fmt: str, columns: Sequence[str] | None = None, document: Any = None) -> None:
    """Write rows to stdout; json writes ``document`` when given (a richer object than rows)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        payload = document if document is not None else [{c: _plain(r.get(c)) for c in columns} for r in rows]
        click.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(csv_text(rows, columns), nl=False)
    else:
        table(rows, columns)


def csv_text(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """Rows as CSV with a header; every cell neutralised against formula injection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([csv_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ tab or CR gets a quote (OWASP)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a number (even negative) is data, not a formula
    text = _cell(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def table(rows: Iterable[dict], columns: Sequence[str]) -> None:
    click.echo(tabulate_rows(list(rows), columns))


def tabulate_rows(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of rows, '(none)' when there are none; control characters escaped."""
    from tabulate import tabulate  # loads importlib.metadata: only for the commands that print tables

    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())
    return tabulate([[printable(_cell(r.get(c))) for c in columns] for r in rows], headers=columns)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text safe for a terminal: control and bidi-override characters shown as escapes, not obeyed."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    if char in "\n\t\r":
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return str(value)


def note(message: str) -> None:
    """Progress and explanations go to stderr so stdout stays data; directory data escaped."""
    click.echo(printable(message), err=True)


# -- files ----------------------------------------------------------------------------------


@contextlib.contextmanager
def to_output(path: Path | None) -> Iterator[None]:
    """Send stdout to FILE, written whole and owner-only at the end; a failed command leaves no file."""
    if path is None:
        yield
        return
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    from ..files import write_private  # tempfile and shutil: only for commands that write files

    write_private(path, buffer.getvalue())
    note(f"wrote {path} ({path.stat().st_size:,} bytes)")


def output_option():
    """-o FILE, checked before the work starts (a large report takes a while to compute)."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        callback=_writable,
        help="Write to FILE (owner-only) instead of stdout.",
    )


def _writable(_ctx, _param, path: Path | None) -> Path | None:
    if path is not None and not path.parent.is_dir():
        raise RbacMigrateError(f"cannot write {path}: no such directory {path.parent}")
    return path


def mask_secrets(value: Any) -> Any:
    """A URL's password shown as *** (postgresql://user:secret@host → postgresql://user:***@host)."""
    if not isinstance(value, str):
        return value
    return _URL_PASSWORD.sub(r"\1***\2", value)


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*(@)")
