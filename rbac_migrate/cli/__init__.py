"""The command line: parse, call one API function, render. Errors are translated here, once."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from .. import __version__
from ..config import Settings, load_settings, parse_assignments
from ..errors import ExitCode, RbacMigrateError


@dataclass
class App:
    """What every command needs: the flags given, and settings resolved on first use."""

    config: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    verbose: int = 0
    debug: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.flags, self.config)
        return self._settings

    def prompt(self, text: str) -> str:
        """Hidden password prompt, only when a person is at the terminal."""
        if not sys.stdin.isatty():
            raise RbacMigrateError(f"{text}: no password given; set RBAC_MIGRATE_BIND_PASSWORD or bind_password_file")
        return click.prompt(text, hide_input=True, err=True)


pass_app = click.make_pass_decorator(App)

# Command → the module that defines it. Modules load only when their command runs, so a quick
# command does not pay for ldap3, the migration engine or the report renderers.
COMMANDS = {
    "init": "setup",
    "check": "setup",
    "config": "setup",
    "db": "setup",
    "snapshot": "snapshot",
    "access": "access",
    "role": "roles",
    "joiner": "joiner",
    "migrate": "migrate",
    "rollback": "migrate",
    "batches": "migrate",
    "apply": "migrate",
    "remediate": "remediate",
    "report": "reports",
    "exception": "exceptions",
    "audit": "audit",
    "playbook": "playbook",
    "demo": "demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[name]}")
        holder = click.Group()
        module.register(holder)
        return holder.commands.get(name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config", "config", metavar="FILE", help="Config file (default: $RBAC_MIGRATE_CONFIG, ./rbac-migrate.yml)."
)
@click.option("--store", metavar="URL", help="State store URL (default: a SQLite file).")
@click.option("--url", metavar="URL", help="LDAP server URL.")
@click.option("--bind-dn", metavar="DN", help="DN to bind as.")
@click.option("--bind-password-file", metavar="FILE", help="File holding the bind password (mode 600).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Override any setting.")
@click.option("-v", "--verbose", count=True, help="More detail on stderr.")
@click.option("--debug", is_flag=True, help="Show the traceback of unexpected errors.")
@click.version_option(__version__, prog_name="rbac-migrate")
@click.pass_context
def cli(ctx: click.Context, config, store, url, bind_dn, bind_password_file, assignments, verbose, debug) -> None:
    """Move a directory from person-by-person grants to roles, a few users at a time.

    \b
    Example:
      rbac-migrate init --url ldaps://ldap.example.org --bind-dn cn=svc,dc=example,dc=org
      rbac-migrate check && rbac-migrate snapshot take && rbac-migrate access show alice
    """
    flags = parse_assignments(assignments)
    for name, value in (
        ("store", store),
        ("url", url),
        ("bind_dn", bind_dn),
        ("bind_password_file", bind_password_file),
    ):
        if value is not None:
            flags[name] = value
    ctx.obj = App(config=config, flags=flags, verbose=verbose, debug=debug)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every error into one line and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        result = cli.main(args=argv, prog_name="rbac-migrate", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return ExitCode.ERROR
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE if isinstance(exc, click.UsageError) else ExitCode.ERROR
    except RbacMigrateError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # the last line of defence: never a traceback for a user
        if debug:
            raise
        click.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        return ExitCode.ERROR
    return result if isinstance(result, int) else ExitCode.OK


def run() -> None:
    """Console entry point: run, flush, and leave without tearing down every object one by one.

    Freeing a loaded snapshot object by object at exit costs a noticeable share of a quick
    command's time; everything that matters (the store's transactions, the output) is already
    committed or flushed by then.
    """
    code = main()
    from ..store.driver import close_open_stores

    close_open_stores()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    os._exit(int(code))
