"""Files the tool writes (plans, reports, checkpoints, roles files): whole, owner-only, or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import RbacMigrateError


def write_private(path: str | os.PathLike[str], data: str | bytes, error: type[Exception] = RbacMigrateError) -> None:
    """Write ``path`` readable by its owner only (0600), whole or not at all.

    The data goes to a new temporary file beside it (created exclusively with a fresh name, so a
    link placed there in advance is never followed), then takes the final name in one rename.
    Any failure is one ``error`` line naming the file.
    """
    target = Path(path)
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or ".")
    except OSError as exc:
        raise error(f"cannot write {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(partial, target)
    except OSError as exc:
        Path(partial).unlink(missing_ok=True)
        raise error(f"cannot write {target}: {exc.strerror}") from None
