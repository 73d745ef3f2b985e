"""Run the real command line in-process and capture what a user would see."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from click.testing import CliRunner

from rbac_migrate.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run(args: list[str], env: Mapping[str, str] | None = None, input: str | None = None) -> Result:
    """Invoke ``rbac-migrate ARGS`` with only ``env`` as its RBAC_MIGRATE_* environment."""
    runner = CliRunner()
    # Only what the test gives: settings from the developer's own shell must not leak in.
    isolated: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RBAC_MIGRATE_")}
    isolated.update(env or {})
    with runner.isolation(input=input, env=isolated) as streams:
        code = main([str(a) for a in args])
    return Result(int(code), streams[0].getvalue().decode(), streams[1].getvalue().decode())


def assert_one_line_error(result: Result, *fragments: str, code: int = 1) -> str:
    """A failure a user can act on: the exit code, one 'error:' line, no traceback."""
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.err + result.out
    lines = result.err_lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:"), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path
