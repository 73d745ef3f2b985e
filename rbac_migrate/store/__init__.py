"""The state store: the only package that talks SQL. SQLite by default, PostgreSQL for teams.

``database.Store`` is the store every command opens, through SQLAlchemy; it loads on first use,
so a snapshot written through the driver alone (``driver``) never pays for importing SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .database import Store, open_store

__all__ = ["Store", "open_store"]


def __getattr__(name: str):
    if name in __all__:
        from . import database

        return getattr(database, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
