"""Docs that cannot drift: the README's config reference and every command's help."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from rbac_migrate.cli import cli
from rbac_migrate.starter import reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_readme_config_reference_is_current():
    text = (ROOT / "README.md").read_text()
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    block = text[text.index(start) + len(start) : text.index(end)]
    assert block == reference_markdown(), "regenerate the README block from rbac_migrate.starter.reference_markdown()"


def test_readme_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1 : lines.index("```")]
    assert [line.split()[0] for line in block] == ["./scripts/demo", "./scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def _commands(group: click.Group, prefix: str = ""):
    ctx = click.Context(group)
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_module_is_listed():
    names = {name for name, _command in _commands(cli)}
    assert {
        "init",
        "check",
        "snapshot",
        "access",
        "role",
        "joiner",
        "migrate",
        "rollback",
        "batches",
        "report",
        "audit",
        "playbook",
        "demo",
    } <= names


@pytest.mark.parametrize("name, command", list(_commands(cli)), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_ending_with_an_example(name, command):
    if isinstance(command, click.Group):
        assert command.help, name
        return
    help_text = command.help or ""
    assert "Example:" in help_text, f"'{name}' help has no example"
    example = help_text.split("Example:")[-1].strip()
    assert example.startswith("rbac-migrate "), name
