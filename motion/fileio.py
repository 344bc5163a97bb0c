"""Safe output: never overwrite without ``force``, never leave a half-written file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from motion.errors import UserError


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """Refuse to overwrite an existing output unless ``force``; return the path."""
    path = Path(path)
    if path.exists() and not force:
        raise UserError(path, "already exists; pass --force to overwrite")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary keeps the target's suffix so writers that pick a format by extension work.
    """
    path = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npz(path: str | os.PathLike, arrays: dict[str, Any], force: bool = False) -> Path:
    """Write an uncompressed-safe npz atomically (np.savez_compressed)."""
    with atomic_path(path, force) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return Path(path)


def save_json(path: str | os.PathLike, data: Any, force: bool = True) -> Path:
    """Write JSON atomically, pretty-printed."""
    with atomic_path(path, force) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return Path(path)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an npz (pickles allowed only for legacy object arrays) or raise a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such file")
    try:
        with np.load(path, allow_pickle=True) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # numpy raises many types for a corrupt archive
        raise UserError(path, f"not a readable npz archive ({type(exc).__name__}: {exc})") from None
