"""One renderer for every listing: table, json or csv on stdout."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import click
from tabulate import tabulate

FORMATS = ("table", "json", "csv")


def format_option(*formats: str):
    """The shared --format option of listing commands."""
    choices = formats or FORMATS
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
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return value
    return value


def emit(rows: Sequence[dict], fmt: str, columns: Sequence[str] | None = None, document: Any = None) -> None:
    """Write rows to stdout; json writes ``document`` when given (a richer object than rows)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        payload = document if document is not None else [{c: _plain(r.get(c)) for c in columns} for r in rows]
        click.echo(json.dumps(payload, indent=2, default=str, ensure_ascii=False))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c)) for c in columns})
        click.echo(buffer.getvalue(), nl=False)
    else:
        table(rows, columns)


def table(rows: Iterable[dict], columns: Sequence[str]) -> None:
    click.echo(tabulate_rows(list(rows), columns))


def tabulate_rows(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of rows, '(none)' when there are none."""
    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())
    return tabulate([[_cell(r.get(c)) for c in columns] for r in rows], headers=columns)


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
    """Progress and explanations go to stderr so stdout stays data."""
    click.echo(message, err=True)
