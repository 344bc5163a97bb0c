"""Helpers of the benchmark tests: run ``avatarcine`` with the benchmark commands registered."""

from __future__ import annotations

import pytest

from motion import cli

BENCH_MODULE = "diffusion.benchmark.commands"


def run_cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    """``avatarcine ARGV`` through ``motion.cli.main`` (exit code), the benchmark module included."""
    if BENCH_MODULE not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + (BENCH_MODULE,))
    return cli.main([str(a) for a in argv])
