"""Helpers of the benchmark tests: run ``avatarcine`` with the benchmark commands registered, and one
smoke dataset per test session (both benchmark test files use it; it takes most of their time)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest

from motion import cli

BENCH_MODULE = "diffusion.benchmark.commands"


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """``avatarcine ARGV`` through ``motion.cli.main`` (exit code), the benchmark module included."""
    if BENCH_MODULE not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + (BENCH_MODULE,))
    return cli.main([str(a) for a in argv])


@functools.lru_cache(maxsize=None)
def smoke_dataset(seed: int = 0) -> Path:
    """The smoke dataset of ``seed``, built once per session in a temporary folder (removed at exit)."""
    from diffusion.benchmark.dataset import build_dataset

    root = Path(tempfile.mkdtemp(prefix="avatarcine_bench_"))
    atexit.register(shutil.rmtree, root, True)
    return build_dataset(root / "data", "smoke", seed=seed).parent
