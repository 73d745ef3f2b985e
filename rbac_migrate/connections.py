"""Opening what a command works on: the configured state store and directory connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import Settings, bind_password, read_audit_key

if TYPE_CHECKING:  # SQLAlchemy and ldap3 load only for the commands that use them
    from .directory import Directory
    from .directory.reads import Reads
    from .store import Store
    from .store.driver import DriverStore

Prompt = Callable[[str], str]


def store_for(settings: Settings) -> Store:
    """Open the configured store, applying pending schema migrations; with audit_key_file set,
    every audit record appended through it is signed with that key."""
    from .store import open_store

    key = read_audit_key(settings.audit_key_file) if settings.audit_key_file else None
    store = open_store(settings.store)
    store.audit_key = key
    return store


def snapshot_store_for(settings: Settings) -> Store | DriverStore:
    """The store for writing a snapshot: through its driver alone, so ``snapshot take`` need not
    import SQLAlchemy once the store exists and is up to date (a new or older store is first
    created or upgraded as every command does); the SQLAlchemy store where the driver cannot serve."""
    from .store.driver import DriverStore, open_driver

    db = open_driver(settings.store)
    if db is None:
        store = store_for(settings)
        db = open_driver(settings.store)
        if db is None:
            return store
        store.engine.dispose()  # its pooled connection would keep the file from a first snapshot's journal
    return DriverStore(db, settings.store)


def lean_store_for(settings: Settings) -> Store | DriverStore:
    """The store for a command that reads snapshots and the role catalogue, and at most keeps joiner
    proposals or writes a snapshot: through its driver alone where the store exists and is up to
    date, so the command need not import SQLAlchemy; otherwise as ``store_for`` (which creates or
    upgrades it)."""
    from .store.driver import DriverStore, open_driver

    db = open_driver(settings.store)
    return DriverStore(db, settings.store) if db is not None else store_for(settings)


def directory_for(settings: Settings, prompt: Prompt | None = None) -> Directory:
    """Connect and bind with the configured profile."""
    from .directory import connect

    settings.require("url")
    return connect(settings, bind_password(settings, prompt=prompt))


def reader_for(settings: Settings, prompt: Prompt | None = None) -> Reads:
    """A connection for reading a snapshot: libldap alone where it can (not Active Directory, whose
    DirSync reads need ldap3), otherwise the full ldap3 connection.

    A libldap connection that fails to set up gives way to ldap3, so errors read as for any command.
    """
    settings.require("url")
    password = bind_password(settings, prompt=prompt)
    if settings.flavour != "ad" and settings.bulk_reader != "ldap3":
        from .directory.libldap import open_reader

        found = open_reader(settings, password)
        if found is not None:
            if not found.is_active_directory():
                return found
            found.close()
    from .directory import connect

    return connect(settings, password)
