"""init, check, config show, db upgrade."""

from __future__ import annotations

import os

import click

from .. import checks
from ..config import BY_NAME, SETTINGS, config_target, load_settings, read_password_file
from ..errors import ConfigError
from ..starter import starter_config
from . import pass_app
from .render import emit, format_option, mask_secrets, note

INIT_FLAGS = (
    "url",
    "bind_dn",
    "bind_password_file",
    "user_base",
    "user_filter",
    "grant_base",
    "role_base",
    "disabled_filter",
    "peer_attributes",
    "store",
    "flavour",
    "tls",
    "tls_ca_file",
    "id_attribute",
    "member_attribute",
)


def _init_options(func):
    for name in reversed(INIT_FLAGS):
        func = click.option(f"--{name.replace('_', '-')}", name, metavar="VALUE", help=BY_NAME[name].help)(func)
    return func


@click.command()
@click.option(
    "-o",
    "--output",
    "path",
    metavar="FILE",
    help="File to write (default: --config, else $RBAC_MIGRATE_CONFIG, else ./rbac-migrate.yml).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@_init_options
@pass_app
def init(app, path, force, **values) -> None:
    """Write a starter config file where the next command will read it; every setting can be given as a flag.

    \b
    Example:
      rbac-migrate init --url ldaps://ldap.example.org --bind-dn cn=svc,dc=example,dc=org \\
        --bind-password-file ~/.rbac-pw --user-base ou=people,dc=example,dc=org \\
        --grant-base ou=grants,dc=example,dc=org --role-base ou=roles,dc=example,dc=org
    """
    target = config_target(path, app.config, os.environ)
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists: use --force to overwrite it")
    given = {k: v for k, v in values.items() if v is not None}
    if given.get("bind_password_file"):
        read_password_file(given["bind_password_file"])
    try:
        target.write_text(starter_config(given), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    load_settings(config=str(target), environ={})  # what we wrote must read back cleanly
    # Without -o the file is where the next command looks for it; with -o it may not be.
    named = f"--config {target} " if path else ""
    note(f"wrote {target}; next: rbac-migrate {named}check")


@click.command()
@format_option()
@pass_app
def check(app, fmt) -> None:
    """Connect, bind, verify the bases and report what the server offers.

    \b
    Example:
      rbac-migrate check
    """
    report = checks.check(app.settings, app.prompt)
    caps = report.capabilities
    rows = [
        {"item": "server", "value": f"{report.target} ({caps.vendor})"},
        {"item": "bound as", "value": report.bind_dn},
        {"item": "TLS", "value": caps.tls},
        {"item": "users", "value": report.users},
        {"item": "disabled users", "value": report.disabled},
        {"item": "grant groups", "value": report.grant_groups},
        {"item": "roles", "value": report.roles},
        {"item": "paged results", "value": caps.paged_results},
        {"item": "LDAP transactions", "value": caps.transactions},
        {"item": "assertion control", "value": caps.assertion},
        {"item": "nested memberOf", "value": report.nested_member_of},
    ]
    if report.primary_group_members is not None:
        rows.append({"item": "primary-group members (never changed)", "value": report.primary_group_members})
    document = {row["item"]: row["value"] for row in rows}
    emit(rows, fmt, ["item", "value"], document=document)


@click.group("config")
def config_group() -> None:
    """Inspect the resolved configuration."""


@config_group.command("show")
@format_option()
@pass_app
def config_show(app, fmt) -> None:
    """Show every setting, its value and where it came from.

    \b
    Example:
      rbac-migrate config show --format json
    """
    settings = app.settings
    rows = [
        {"setting": s.name, "value": mask_secrets(settings.values[s.name]), "source": settings.sources[s.name]}
        for s in SETTINGS
    ]
    emit(rows, fmt, ["setting", "value", "source"])


@click.group("db")
def db_group() -> None:
    """Manage the state store's schema."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app) -> None:
    """Apply pending schema migrations to the store (also done automatically on use).

    \b
    Example:
      rbac-migrate --store postgresql://rbac@db/rbac db upgrade
    """
    from ..store import open_store

    store = open_store(app.settings.store, upgrade=False)
    applied = store.upgrade()
    note(
        f"store {store.display_url} at revision {store.revision()}"
        + (f" (applied {', '.join(applied)})" if applied else " (up to date)")
    )


def register(cli: click.Group) -> None:
    for command in (init, check, config_group, db_group):
        cli.add_command(command)
