"""Bad or unusual input to the render side, no Blender needed: damaged EXRs, shot lists, default
frame ranges, the prepare step's failure, and helpers that must not mutate or lose information."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _render_util import tube_avatar, wave_motion, write_actor
from motion.errors import UserError
from motion.rotations import quat_continuous
from render.api import _Clip
from render.cameras import camera_path
from render.exr import read_exr, write_exr
from render.scene_config import validate_scene

REPO = Path(__file__).resolve().parents[1]


def test_read_exr_missing_or_truncated_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_exr(tmp_path / "absent.exr")
    path = write_exr(tmp_path / "d.exr", {"Y": np.arange(40 * 30, dtype=np.float32).reshape(40, 30)})
    assert np.array_equal(read_exr(path)["Y"], np.arange(40 * 30).reshape(40, 30))
    data = path.read_bytes()
    for cut in (20, len(data) // 2, len(data) - 5):
        path.write_bytes(data[:cut])
        with pytest.raises(UserError, match="truncated or corrupt EXR") as exc:
            read_exr(path)
        assert str(path) in str(exc.value)


def test_shot_without_seconds_before_the_last_is_named():
    points = np.random.default_rng(0).normal(scale=0.3, size=(10, 4, 3)) + [0.0, 0.0, 1.0]
    spec = {"shots": [{"type": "static", "seconds": 0.1}, {"type": "static"}, {"type": "static"}]}
    with pytest.raises(UserError, match=r"camera\.shots\[1\]\.seconds"):
        camera_path(spec, points, {"a": points[:, 0]}, 30.0, 32, 32)
    spec["shots"][1]["seconds"] = 0.1
    assert camera_path(spec, points, {"a": points[:, 0]}, 30.0, 32, 32).shot.tolist() == [0] * 3 + [1] * 3 + [2] * 4


def _clip_frames(tmp_path, frames):
    asset = tube_avatar()
    scene = validate_scene({"fps": 30, "resolution": [16, 16], "frames": frames, "passes": ["mask"],
                            "actors": [write_actor(tmp_path, "a", asset, wave_motion(asset, 5)),
                                       write_actor(tmp_path, "b", asset, wave_motion(asset, 3))]}, "scene")
    return _Clip(scene, tmp_path).frames.tolist()


def test_start_without_end_runs_to_the_last_motion_frame(tmp_path):
    assert _clip_frames(tmp_path, {"start": 2}) == [2, 3, 4]
    assert _clip_frames(tmp_path, {}) == [0, 1, 2, 3, 4]
    with pytest.raises(UserError, match="frames.start"):
        _clip_frames(tmp_path, {"start": 5})


def test_prepare_leaves_the_callers_camera_alone(tmp_path):
    from render.cast import prepare
    asset = tube_avatar()
    scene = validate_scene({"fps": 30, "resolution": [16, 16], "passes": ["mask"],
                            "actors": [write_actor(tmp_path, "a", asset, wave_motion(asset, 2))],
                            "camera": {"shots": [{"type": "from_file", "path": "cam.json", "seconds": 1},
                                                 {"type": "static"}]}}, "scene")
    before = json.dumps(scene)
    written = json.loads(prepare(scene, tmp_path / "out", tmp_path).read_text())
    assert json.dumps(scene) == before
    assert written["camera"]["shots"][0]["path"] == str((tmp_path / "cam.json").resolve())


def test_quat_continuous_takes_the_short_way():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(20, 3, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    flips = rng.choice([-1.0, 1.0], size=(20, 3, 1))
    out = quat_continuous(q * flips)
    assert (np.sum(out[1:] * out[:-1], -1) >= 0).all()
    assert np.allclose(np.abs(np.sum(out * q, -1)), 1.0)        # same rotations, signs only


def test_blender_entry_returns_the_prepare_steps_exit_code(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fps: [unclosed\n")
    exe = Path(sys.executable).parent / "avatarcine"
    if not exe.is_file():
        pytest.skip("avatarcine entry point not installed")
    run = subprocess.run([sys.executable, str(REPO / "render" / "blender_entry.py"), "--", str(bad), "-o",
                          str(tmp_path / "out")], capture_output=True, text=True,
                         env={**os.environ, "AVATARCINE": str(exe)})
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("avatarcine: error:") == 1, run.stderr
