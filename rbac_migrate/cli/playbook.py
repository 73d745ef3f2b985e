"""playbook run | status | check."""

from __future__ import annotations

import sys

import click

from .. import connections, playbooks
from ..errors import UsageError
from . import pass_app
from .render import emit, format_option, note

WAITING = 5


def _global_args(app) -> list[str]:
    """The caller's own --config and settings, so every step talks to the same directory and store."""
    args = ["--config", app.config] if app.config else []
    for name, value in app.flags.items():
        text = ",".join(value) if isinstance(value, list) else str(value)
        args += ["--set", f"{name}={text}"]
    return args


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var expects NAME=VALUE, got '{pair}'")
        values[name.strip()] = value
    return values


@click.group("playbook")
def playbook_group() -> None:
    """Run standard, pre-approved procedures from playbooks/*.yml."""


@playbook_group.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--var", "pairs", multiple=True, metavar="NAME=VALUE", help="A playbook variable; repeatable.")
@click.option("--dry-run", is_flag=True, help="Validate and show the steps; run nothing.")
@click.option("--yes", is_flag=True, help="Confirm gates and writes without asking.")
@click.option("--ticket", help="Change ticket kept with every audit record of the run.")
@click.option("--override-gate", metavar="REASON", help="Open the next gate's wait early (audited with REASON).")
@pass_app
def run_cmd(app, file, pairs, dry_run, yes, ticket, override_gate) -> int:
    """Run a playbook step by step, or resume it where it stopped (exit 5: waiting at a gate).

    \b
    Running it again with the same variables resumes the open run; an open run on the same role
    is never bypassed by other variables: 'playbook cancel RUN' ends it.

    \b
    Example:
      rbac-migrate playbook run playbooks/migrate-role-in-waves.yml --var role=role-fin-accountant --var ticket=CHG-7
    """
    book = playbooks.load(file)
    values = playbooks.resolve_vars(book, _parse_vars(pairs))
    if dry_run:
        for step in book.steps:
            what = (
                "rbac-migrate " + " ".join(playbooks.command_args(step, values))
                if step.run
                else _gate_text(step, values)
            )
            click.echo(f"{step.id}: {what}")
        note(f"{book.name}: {len(book.steps)} steps, valid")
        return 0
    from . import main

    base = _global_args(app)
    outcome = playbooks.run(
        book,
        values,
        connections.store_for(app.settings),
        runner=lambda args: main(base + args),
        ask=lambda question: yes or (sys.stdin.isatty() and click.confirm(question, err=True)),
        say=note,
        ticket=ticket,
        override_gate=override_gate,
    )
    note(outcome.message)
    return {"finished": 0, "waiting": WAITING}.get(outcome.status, 1)


def _gate_text(step, values: dict[str, str]) -> str:
    parts = []
    if step.gate.confirm:
        parts.append(f"confirm '{step.gate.confirm.format(**values)}'")
    if step.gate.wait:
        parts.append(f"wait {step.gate.wait.format(**values)}")
    return "gate: " + ", ".join(parts)


@playbook_group.command("status")
@format_option()
@pass_app
def status_cmd(app, fmt) -> None:
    """Every playbook run recorded in the store, with its progress.

    \b
    Example:
      rbac-migrate playbook status
    """
    rows = playbooks.status(connections.store_for(app.settings))
    emit(rows, fmt, ["run", "playbook", "state", "steps_done", "last_step", "started", "updated"])


@playbook_group.command("cancel")
@click.argument("run_id", metavar="RUN")
@click.option("--reason", required=True, help="Why the run ends, kept in the audit log.")
@click.option("--ticket", help="Change ticket reference, kept in the audit log.")
@pass_app
def cancel_cmd(app, run_id, reason, ticket) -> None:
    """End an open playbook run (audited); the next run of that playbook starts from its first step.

    \b
    Example:
      rbac-migrate playbook cancel 3f2a9c1d0e4b --reason "wave plan changed" --ticket CHG-8
    """
    state = playbooks.cancel(connections.store_for(app.settings), run_id, reason, ticket)
    note(f"run {run_id} of {state.playbook} cancelled after {len(state.done)} steps")


def register(cli: click.Group) -> None:
    cli.add_command(playbook_group)
