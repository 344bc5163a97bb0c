"""Blender's own terminal output (a ``Saved: '...'`` line per render, warnings) goes to a log file in
normal runs, so the terminal shows our messages and progress bar only.

Blender writes from C straight to file descriptors 1 and 2, past Python's ``sys.stdout``. Inside
:func:`blender_output_to` both descriptors point at the log; ``sys.stdout`` and ``sys.stderr`` are
streams on duplicates of the original descriptors, so what Python prints there (our messages, a
progress bar created inside the block) still reaches the terminal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from pathlib import Path
from typing import Iterator

LOG = Path("logs") / "blender.log"


def _flush_c_streams() -> None:
    """Flush C stdio buffers, so nothing Blender buffered lands on the wrong side of a switch."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, TypeError, AttributeError):   # no C library handle (Windows): Blender flushes its logs
        pass


@contextlib.contextmanager
def blender_output_to(log: Path | None) -> Iterator[None]:
    """Send what is written to descriptors 1 and 2 into ``log`` (truncated) while Python's
    ``sys.stdout``/``sys.stderr`` keep writing to the terminal; ``None`` changes nothing."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    python_streams = sys.stdout, sys.stderr
    for stream in python_streams:
        stream.flush()
    _flush_c_streams()
    saved = [os.dup(1), os.dup(2)]
    ours = [os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                      errors="backslashreplace") for fd, stream in zip(saved, python_streams)]
    with open(log, "wb") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
    sys.stdout, sys.stderr = ours
    try:
        yield
    finally:
        for stream in ours:
            stream.flush()
        _flush_c_streams()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        sys.stdout, sys.stderr = python_streams
        for stream in ours:
            stream.close()
        for fd in saved:
            os.close(fd)
