"""demo: the whole story against a throwaway local directory, in a couple of minutes."""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

import click
import yaml

from ..errors import RbacMigrateError
from .render import note


class DemoError(RbacMigrateError):
    """The demo could not set up its throwaway directory."""


def _step(title: str, explanation: str, *args: str) -> None:
    from . import main  # the real command line, exactly as a user would type it

    click.secho(f"\n== {title}", bold=True, err=True)
    note(explanation)
    note(f"$ rbac-migrate {' '.join(shlex.quote(a) for a in args)}")
    code = main(list(args))
    if code not in (0, 3):
        raise DemoError(f"step '{title}' failed (exit {code})")


def _write_config(folder: Path, server, org) -> Path:
    config = folder / "rbac-migrate.yml"
    values = {
        "url": server.url,
        "bind_dn": server.admin_dn,
        "bind_password_file": str(folder / "bind.pw"),
        "tls": "none",  # a loopback-only throwaway server; real directories use starttls or ldaps
        "user_base": org.people_dn,
        "grant_base": org.grant_base,
        "role_base": org.role_base,
        "store": f"sqlite:///{folder / 'state.db'}",
    }
    password = folder / "bind.pw"
    password.write_text(server.admin_password)
    password.chmod(0o600)
    config.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return config


@click.command()
@click.option("--users", default=200, show_default=True, help="Size of the sample organisation.")
@click.option("--seed", default=1, show_default=True, help="Seed of the sample organisation.")
@click.option("--keep", is_flag=True, help="Leave the directory running and print how to continue by hand.")
def demo(users: int, seed: int, keep: bool) -> None:
    """Run the story on a throwaway local slapd seeded with a sample organisation.

    Needs OpenLDAP's slapd and ldap-utils (apt-get install slapd ldap-utils); nothing is
    installed or changed outside a temporary directory.

    \b
    Example:
      rbac-migrate demo --users 500
    """
    from ..demo.sampleorg import generate
    from ..demo.sandbox import SandboxError, Slapd

    folder = Path(tempfile.mkdtemp(prefix="rbac-migrate-demo-"))
    org = generate(users, seed=seed)
    ldif = folder / "sample-org.ldif"
    org.write_ldif(ldif)
    try:
        server = Slapd(suffix=org.base_dn, workdir=folder / "slapd").start([ldif])
    except SandboxError as exc:
        raise DemoError(str(exc)) from None
    try:
        config = _write_config(folder, server, org)
        os.environ["RBAC_MIGRATE_CONFIG"] = str(config)
        _add_joiner(server, org)
        _tour(org, folder)
    except BaseException:
        server.stop()
        raise
    if not keep:
        server.stop()
        click.echo(f"\nThe demo's files are in {folder}; its directory has been stopped.", err=True)
        return
    try:
        pidfile = server.detach()
    except SandboxError as exc:
        raise DemoError(str(exc)) from None
    click.echo(  # the demo's own lines: note() would show their line breaks escaped
        f"\nThe directory keeps running at {server.url}. Continue by hand:\n"
        f"  export RBAC_MIGRATE_CONFIG={config}\n"
        f"  rbac-migrate joiner propose {org.users[0].uid}\n"
        f"  rbac-migrate report orphans\n"
        f"Stop it with: kill $(cat {pidfile})",
        err=True,
    )


JOINER = "newjoiner"


def _add_joiner(server, org) -> None:
    """A new hire, in the directory with no access yet: the service desk's starting point."""
    dept, title = org.role_profiles[_busiest_role(org)]
    server.ldapadd(
        f"dn: uid={JOINER},{org.people_dn}\nobjectClass: inetOrgPerson\nuid: {JOINER}\ncn: New Joiner\n"
        f"sn: Joiner\ndepartmentNumber: {dept}\ntitle: {title}\n\n"
    )


def _busiest_role(org) -> str:
    return max(org.role_profiles, key=lambda r: sum(1 for u in org.users if _candidate(org, u, r)))


def _tour(org, folder: Path) -> None:
    holder = next(u for u in org.users if not u.leaver and org.effective_grants(u.uid) - u.direct_grants)
    grant = sorted(org.effective_grants(holder.uid) - holder.direct_grants)[0]
    role = _busiest_role(org)
    mover = next(u for u in org.users if _candidate(org, u, role))
    _step("check", "Connect, bind, verify the configured bases and see what the server offers.", "check")
    _step(
        "snapshot",
        f"Copy who holds what ({len(org.users) + 1} users) into the state store. Everything read-only "
        "works from snapshots, so the directory is read once.",
        "snapshot",
        "take",
    )
    _step(
        "access",
        f"What can {holder.uid} reach, and how? Direct grants, grants via a role, grants via nesting.",
        "access",
        "show",
        holder.uid,
    )
    _step("explain", f"Why does {holder.uid} have {grant}?", "access", "explain", holder.uid, grant)
    _step(
        "joiner",
        f"A new hire, {JOINER}, starts on Monday. Which role fits, with evidence from their peers?",
        "joiner",
        "propose",
        JOINER,
    )
    _step(
        "onboard",
        "Give the joiner the proposed role: their access comes through the role from day one.",
        "joiner",
        "onboard",
        JOINER,
        "--proposal",
        "1",
        "--ticket",
        "DEMO-0",
        "--yes",
    )
    _step(
        "plan",
        f"Plan the first wave: move {mover.uid} onto {role}. The role gets added, the direct grants it "
        "covers get removed, nothing else; nothing is written yet.",
        "migrate",
        "plan",
        "--role",
        role,
        "--users",
        mover.uid,
    )
    _step(
        "apply",
        "Apply it: the rollback point is stored first, the change is one LDAP transaction, and "
        f"{mover.uid}'s effective access is read back and compared before the batch counts as done.",
        "migrate",
        "apply",
        "--role",
        role,
        "--users",
        mover.uid,
        "--ticket",
        "DEMO-1",
        "--yes",
    )
    _step("batches", "Every batch, with its outcome.", "batches", "list")
    _step(
        "orphans",
        "The auditor's view: leftover and orphaned rights, as a self-contained HTML page.",
        "report",
        "orphans",
        "--format",
        "html",
        "-o",
        str(folder / "orphans.html"),
    )
    _step(
        "rollback",
        "Changed your mind? Roll the wave back: exactly the prior member values return. Every batch can "
        "be rolled back the same way, the onboarding (batch 1) included.",
        "rollback",
        "2",
        "--ticket",
        "DEMO-2",
        "--yes",
    )


def _candidate(org, user, role: str) -> bool:
    return (user.department, user.title) == org.role_profiles[role] and not user.roles and not user.leaver


def register(cli: click.Group) -> None:
    cli.add_command(demo)
