"""Alembic migrations of the state store, run programmatically on an open connection."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

HERE = Path(__file__).parent


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config()).get_current_head()


def upgrade(connection: Connection) -> list[str]:
    """Upgrade to head inside the caller's transaction; return the revisions applied."""
    before = current(connection)
    if before == head():
        return []
    command.upgrade(config(connection), "head")
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config())
    applied = [rev.revision for rev in script.iterate_revisions(head(), before)]
    return list(reversed(applied))
