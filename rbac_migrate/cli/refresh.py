"""Commands that plan read a fresh snapshot first (quick and incremental where the server offers it)."""

from __future__ import annotations

import click


def refresh_option(func):
    return click.option(
        "--no-refresh", is_flag=True, help="Use the latest snapshot as it is instead of reading the directory first."
    )(func)


def refresh(app, store, skip: bool) -> str:
    """Bring the store up to the directory before planning; returns how, for the command to say once it succeeds.

    Said afterwards, so that a refusal stays the one line on stderr.
    """
    if skip:
        info = store.snapshot_info()
        return f"planned from snapshot {info.id} of {info.taken_at:%Y-%m-%d %H:%M:%S} as it is (--no-refresh)"
    from ..snapshot import refresh as take

    snapshot_id, how = take(app.settings, store, prompt=app.prompt)
    return f"planned from snapshot {snapshot_id}: {how}"
