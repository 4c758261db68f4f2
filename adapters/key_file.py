"""A signing key for development and tests, made on first use and kept in a file.

Never a key written in the source: a published key lets anyone mint tokens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

KEY_BYTES = 48


def load_or_create_key(path: Path) -> str:
    """The key kept at ``path``; a new random one, written there (mode 0600), when the
    file does not exist yet. Processes starting at once agree on one key: it appears
    whole under its name or not at all."""
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(KEY_BYTES) + "\n")
        # link() fails if another process got there first; its key wins.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise ValueError(f"the key file {path} is empty: delete it to make a new key")
    return key
