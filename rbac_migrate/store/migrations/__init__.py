"""Alembic migrations of the state store, run programmatically on an open connection.

Alembic is imported only when the schema is behind: opening an up-to-date store costs one query.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from ..driver import HEAD  # the newest revision in versions/; a test checks it against Alembic's own view

HERE = Path(__file__).parent


def config(connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def current(connection: Connection) -> str | None:
    """The store's revision, or None for an empty store."""
    try:
        with connection.begin_nested():
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def head() -> str:
    """Alembic's head revision, read from the scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config()).get_current_head()


def upgrade(connection: Connection) -> list[str]:
    """Upgrade to head inside the caller's transaction; return the revisions applied."""
    before = current(connection)
    if before == HEAD:
        return []
    from alembic import command
    from alembic.script import ScriptDirectory

    command.upgrade(config(connection), "head")
    script = ScriptDirectory.from_config(config())
    return [rev.revision for rev in reversed(list(script.iterate_revisions("head", before)))]
