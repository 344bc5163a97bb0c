"""Progress bars for long work (tqdm on stderr; silent when AVATARCINE_QUIET=1 or not a terminal
unless forced with AVATARCINE_PROGRESS=1). A stock Blender's Python has no tqdm: there the work
simply runs without a bar."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def _enabled() -> bool:
    if os.environ.get("AVATARCINE_QUIET") == "1":
        return False
    return os.environ.get("AVATARCINE_PROGRESS") == "1" or sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar labelled ``desc``."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not _enabled(), leave=False)
