"""Blender's own output stays out of the terminal: descriptors 1/2 go to OUT/logs/blender.log while
our prints and progress bar still reach the terminal; `--verbose` shows Blender's output instead."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _render_util import tube_avatar, wave_motion, write_actor

REPO = Path(__file__).resolve().parents[1]

SWITCHED = """
import os, sys
from pathlib import Path
from render.blender_log import blender_output_to
log = Path(sys.argv[1]) if sys.argv[1] != "-" else None
with blender_output_to(log):
    os.write(1, b"C-level stdout\\n")
    os.write(2, b"C-level stderr\\n")
    print("python stdout")
    print("python stderr", file=sys.stderr)
print("after")
os.write(1, b"C-level after\\n")
"""


def _python(code: str, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, env=env)


def test_descriptors_go_to_the_log_and_python_streams_to_the_terminal(tmp_path):
    run = _python(SWITCHED, tmp_path / "logs" / "blender.log")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "python stdout\nafter\nC-level after\n" and run.stderr == "python stderr\n"
    assert (tmp_path / "logs" / "blender.log").read_text() == "C-level stdout\nC-level stderr\n"
    # control: without a log nothing is switched
    plain = _python(SWITCHED, "-")
    assert plain.stdout == "C-level stdout\npython stdout\nafter\nC-level after\n"
    assert plain.stderr == "C-level stderr\npython stderr\n"


@pytest.mark.blender
def test_render_keeps_saved_lines_in_the_log_and_shows_them_with_verbose(tmp_path):
    pytest.importorskip("bpy")
    actor = write_actor(tmp_path, "a", tube_avatar(), wave_motion(tube_avatar(), 3))
    scene = tmp_path / "scene.json"
    scene.write_text(json.dumps({"fps": 30, "resolution": [24, 24], "actors": [actor],
                                 "camera": {"type": "static"}, "passes": ["mask"]}))
    env = {k: v for k, v in os.environ.items() if k != "AVATARCINE_QUIET"} | {"AVATARCINE_PROGRESS": "1"}

    def render(out: str, *flags: str) -> subprocess.CompletedProcess:
        run = subprocess.run([sys.executable, "-m", "motion.cli", "render", str(scene), "-o", str(tmp_path / out),
                              "--no-previews", *flags], cwd=REPO, capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        return run

    quiet = render("quiet")
    assert "Saved:" not in quiet.stdout + quiet.stderr
    assert quiet.stdout.strip() == str(tmp_path / "quiet")
    assert re.search(r"render: +\d+%\|.*\| [0-3]/3 \[", quiet.stderr), quiet.stderr   # our progress bar
    log = (tmp_path / "quiet" / "logs" / "blender.log").read_text()
    assert log.count("Saved:") == 3, log                  # one flat render per frame
    loud = render("loud", "--verbose")
    assert loud.stdout.count("Saved:") + loud.stderr.count("Saved:") == 3
    assert not (tmp_path / "loud" / "logs").exists()


def test_bench_render_keeps_blender_output_in_the_log(tmp_path):
    pytest.importorskip("bpy")
    avatar = tmp_path / "tube.npz"
    tube_avatar().save(avatar)
    out = tmp_path / "bench" / "render.json"
    run = subprocess.run([sys.executable, "-m", "motion.cli", "bench", "render", "--resolution", "24", "--frames", "2",
                          "--avatar", str(avatar), "-o", str(out)], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Saved:" not in run.stdout + run.stderr
    assert json.loads(out.read_text())["identical_passes"] is True          # our figures still printed
    assert json.loads(run.stdout)["frames"] == 2
    assert (tmp_path / "bench" / "logs" / "blender.log").read_text().count("Saved:") == 4   # 2 frames x 2 ways
