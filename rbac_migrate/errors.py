"""One error hierarchy; every class carries the exit code the command line uses."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes: 0 ok, 1 error, 2 usage."""

    OK = 0
    ERROR = 1
    USAGE = 2


class RbacMigrateError(Exception):
    """An error the user can act on; its message is one line naming what to fix."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(RbacMigrateError):
    """The command was called wrongly (bad option value, unknown name)."""

    exit_code = ExitCode.USAGE


class ConfigError(RbacMigrateError):
    """The configuration file, environment or flags are invalid."""


class SecretError(ConfigError):
    """A bind password could not be obtained safely."""


class DirectoryError(RbacMigrateError):
    """The directory could not be reached, bound to, or read."""


class StoreError(RbacMigrateError):
    """The state store could not be opened, migrated or written."""


class NotFoundError(RbacMigrateError):
    """A named user, group, role or snapshot does not exist."""
