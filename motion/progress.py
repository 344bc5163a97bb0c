"""Progress for long work: tqdm bars on stderr for people (silent when AVATARCINE_QUIET=1 or not a
terminal unless forced with AVATARCINE_PROGRESS=1), or, with AVATARCINE_PROGRESS=lines, one
machine-readable line per step on stderr for a program driving this one (the Blender add-on runs
the backend and the render that way, ``parse_line`` reads them back). A stock Blender's Python has
no tqdm: there the work runs without a bar, but lines still work."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
LINE_TAG = "avatarcine-progress"


def _enabled() -> bool:
    if os.environ.get("AVATARCINE_QUIET") == "1":
        return False
    return os.environ.get("AVATARCINE_PROGRESS") == "1" or sys.stderr.isatty()


def _lines(iterable: Iterable[T], desc: str, total: int | None) -> Iterator[T]:
    """Yield the items, writing ``TAG<TAB>done<TAB>total<TAB>desc`` before each step and after the last."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    count = "?" if total is None else str(total)
    done = 0
    for item in iterable:
        print(f"{LINE_TAG}\t{done}\t{count}\t{desc}", file=sys.stderr, flush=True)
        yield item
        done += 1
    print(f"{LINE_TAG}\t{done}\t{count}\t{desc}", file=sys.stderr, flush=True)


def parse_line(line: str) -> tuple[str, int, int | None] | None:
    """(desc, done, total or None) of a progress line, or None for any other line."""
    parts = line.rstrip("\r\n").split("\t", 3)
    if len(parts) != 4 or parts[0] != LINE_TAG or not parts[1].isdigit():
        return None
    return parts[3], int(parts[1]), int(parts[2]) if parts[2].isdigit() else None


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """Wrap ``iterable`` in a progress bar (or progress lines) labelled ``desc``."""
    if os.environ.get("AVATARCINE_PROGRESS") == "lines":
        return _lines(iterable, desc, total)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=not _enabled(), leave=False)
