"""meta.json writing helpers: entries follow the schema, NaN -> null -> NaN, atomic and checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from motion.errors import UserError
from render import meta as M


def _frame(index, nan=False):
    kp = np.column_stack([np.arange(18) + 0.5, np.arange(18) * 2.0, np.ones(18)])
    if nan:
        kp[3] = [np.nan, np.nan, 0]
    actor = M.actor_frame(np.zeros((22, 3)), {"openpose18": kp})
    return M.frame_entry(index, index / 30, np.eye(3), np.eye(4), np.diag([1.0, -1, -1, 1]), 0, {"a": actor})


def test_round_trip(tmp_path):
    passes = {"rgb": M.standard_pass("image", "rgb"),
              "depth": M.standard_pass("depth", near=1.0, far=4.0, bits=8),
              "openpose": M.standard_pass("pose", "openpose"),
              "flow": M.standard_pass("flow")}
    meta = M.build_meta(fps=30, resolution=(64, 48), passes=passes, frames=[_frame(5), _frame(6, nan=True)],
                        joint_names={"smpl": [f"j{k}" for k in range(22)]},
                        actors=[{"name": "a", "body": "anny", "skeleton": "smpl", "instance_id": 1}])
    M.write_meta(tmp_path, meta)
    text = (tmp_path / "meta.json").read_text()
    assert "NaN" not in text and "null" in text                      # strict JSON
    back = M.read_meta(tmp_path)
    assert back["frames_range"] == [5, 6] and back["keypoint_names"] == {"openpose18": M.OPENPOSE18}
    kp = np.asarray(back["frames"][1]["actors"]["a"]["keypoints2d"]["openpose18"], dtype=float)
    assert np.isnan(kp[3, :2]).all() and kp[3, 2] == 0 and kp[4].tolist() == [4.5, 8.0, 1.0]
    assert back["passes"]["depth"]["encoding"].startswith("value = round(1 + 254 * (far - z)")
    assert back["passes"]["depth"]["near"] == 1.0 and back["passes"]["depth"]["dtype"] == "uint8"
    assert back["passes"]["flow"]["exr_channels"] == ["dx", "dy"]
    assert M.frame_path(tmp_path, back, "openpose", 6) == tmp_path / "openpose" / "000006.png"
    K, E = M.camera_arrays(back["frames"][0])
    assert np.array_equal(K, np.eye(3)) and np.array_equal(E, np.eye(4))
    with pytest.raises(UserError):
        M.write_meta(tmp_path, meta, force=False)                   # never overwrite silently
    assert json.loads(text) == json.loads((tmp_path / "meta.json").read_text())


def test_bad_entries(tmp_path):
    with pytest.raises(ValueError):
        M.standard_pass("depth", near=1.0)
    with pytest.raises(ValueError):
        M.standard_pass("labels")
    with pytest.raises(ValueError):
        M.pass_entry("x", ext="jpg", dtype="uint8", channels=3, colour_space="sRGB", encoding="e")
    with pytest.raises(ValueError):
        M.actor_frame(np.zeros((22, 3)), {"openpose18": np.zeros((17, 3))})
    meta = M.build_meta(fps=30, resolution=(8, 8), passes={"bad": {"ext": "png"}}, frames=[_frame(0)],
                        joint_names={}, actors=[])
    with pytest.raises(UserError, match="bad"):
        M.write_meta(tmp_path, meta)
    assert not (tmp_path / "meta.json").exists()
    with pytest.raises(UserError, match="no frames"):
        M.write_meta(tmp_path, {**meta, "passes": {}, "frames": []})


def test_keypoint_name_sets():
    assert len(M.HAND21) == 21 and M.HAND21[0] == "wrist" and M.HAND21[4] == "thumb4"
    assert len(M.FACE68) == 68 and M.FACE68[36] == "right_eye_0" and M.FACE68[48] == "mouth_outer_0"
