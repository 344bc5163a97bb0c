"""`avatarcine --help` and every subcommand's --help import none of bpy, torch, cv2 or diffusers, and
each command imports only what its own work needs (read from `python -X importtime`)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"bpy", "torch", "cv2", "diffusers"}


def imported(args: list[str], cwd: Path) -> set[str]:
    """Top-level names of every module `avatarcine ARGS` imports."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "motion.cli", *args], cwd=cwd,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert rows[0] == "imported package" and len(rows) > 50, run.stderr[-2000:]
    return {name.split(".")[0] for name in rows[1:]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "walk.npz"
    assert HEAVY.isdisjoint(imported(["motion", "generate", "walk forward", "--seconds", "1", "-o", str(path)], REPO))
    return path


@pytest.mark.parametrize("args", [["--help"], ["render", "--help"], ["addon", "build", "--help"],
                                  ["avatar", "bake", "--help"], ["generate", "--help"], ["eval", "--help"],
                                  ["train", "--help"], ["bench", "--help"]])
def test_help_imports_no_heavy_module(args):
    assert HEAVY & imported(args, REPO) == set()


def test_light_commands_do_their_work_without_heavy_modules(clip, tmp_path):
    assert HEAVY & imported(["motion", "info", str(clip)], REPO) == set()
    assert HEAVY & imported(["addon", "build", "-o", str(tmp_path / "ext.zip")], REPO) == set()
    assert (tmp_path / "ext.zip").is_file()


def test_baking_imports_torch_when_run(tmp_path):
    """Control: a command whose work needs torch imports it when it runs (not for its --help); the
    default avatar is shipped, so baking it needs no torch."""
    names = imported(["avatar", "bake", "--shape", "height=0.6", "-o", str(tmp_path / "anny.npz")], REPO)
    assert "torch" in names and "bpy" not in names and (tmp_path / "anny.npz").is_file()
    assert "torch" not in imported(["avatar", "bake", "-o", str(tmp_path / "default.npz")], REPO)
