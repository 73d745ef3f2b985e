"""Opening what a command works on: the configured state store and directory connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import Settings, bind_password, read_audit_key
from .store import Store, open_store

if TYPE_CHECKING:  # the directory layer (ldap3) loads only for commands that talk to the server
    from .directory import Directory

Prompt = Callable[[str], str]


def store_for(settings: Settings) -> Store:
    """Open the configured store, applying pending schema migrations; with audit_key_file set,
    every audit record appended through it is signed with that key."""
    key = read_audit_key(settings.audit_key_file) if settings.audit_key_file else None
    store = open_store(settings.store)
    store.audit_key = key
    return store


def directory_for(settings: Settings, prompt: Prompt | None = None) -> Directory:
    """Connect and bind with the configured profile."""
    from .directory import connect

    settings.require("url")
    return connect(settings, bind_password(settings, prompt=prompt))
