"""`avatarcine eval --pose-detector mediapipe` (the eval extra): MediaPipe's 33 landmarks map to
OpenPose-18 by name; on our own path-traced render MediaPipe finds the actor, its keypoints agree
with our projected keypoints and its mask with our mask pass; on blank frames it finds no one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from diffusion.evaluation import mediapipe_pose as mpp
from motion.cli import main
from render.meta import OPENPOSE18
from render.png import write_png

# MediaPipe Pose's landmark order (its model card / PoseLandmark enum).
MEDIAPIPE33 = ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
               "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
               "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
               "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
               "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
               "left_foot_index", "right_foot_index"]


def test_mediapipe_landmarks_map_to_openpose18_by_name():
    marks = np.arange(66, dtype=float).reshape(33, 2)
    scores = np.linspace(0.05, 0.95, 33)
    kp, sc = mpp.openpose18_from_mediapipe33(marks, scores)
    shoulders = [MEDIAPIPE33.index("left_shoulder"), MEDIAPIPE33.index("right_shoulder")]
    for i, name in enumerate(OPENPOSE18):
        if name == "neck":
            np.testing.assert_allclose(kp[i], marks[shoulders].mean(axis=0))
            assert sc[i] == scores[shoulders].min()
        else:
            np.testing.assert_array_equal(kp[i], marks[MEDIAPIPE33.index(name)])
            assert sc[i] == scores[MEDIAPIPE33.index(name)]
    try:
        from mediapipe.python.solutions.pose import PoseLandmark
    except ImportError:
        return
    assert [landmark.name.lower() for landmark in PoseLandmark] == MEDIAPIPE33


@pytest.mark.blender
def test_mediapipe_finds_our_rendered_actor_and_no_one_on_blank_frames(tmp_path, capsys):
    pytest.importorskip("bpy")
    pytest.importorskip("mediapipe")
    from render.api import render_scene

    scene = {"fps": 10, "resolution": [192, 192], "frames": {"seconds": 0.3},
             "actors": [{"name": "a", "body": "anny", "motion": {"generate": "walk forward", "seconds": 1}}],
             "camera": {"type": "static"}, "passes": ["mask", "rgb"], "engine": {"rgb": "cycles", "rgb_samples": 8}}
    gt = render_scene(scene, tmp_path / "gt", base_dir=tmp_path, previews=False)
    shutil.copytree(gt / "rgb", tmp_path / "rendered")                   # the render itself as the "video"
    for frame in sorted((gt / "rgb").glob("*.png")):
        write_png(tmp_path / "blank" / frame.name, np.full((192, 192, 3), 128, np.uint8))
    code = main(["eval", str(tmp_path / "rendered"), str(tmp_path / "blank"), str(gt), "--pose-detector", "mediapipe",
                 "-o", str(tmp_path / "report")])
    assert code == 0
    assert "Detection rate" in capsys.readouterr().out
    result = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert "keypoints" not in result["skipped"] and "mask_iou" not in result["skipped"]
    ours, blank = result["methods"]["rendered"]["summary"], result["methods"]["blank"]["summary"]
    # A different skeleton convention (MediaPipe's hips and ears are not our OpenPose points) costs a
    # few pixels, well inside PCK@0.1 of a ~100 px tall actor; the silhouettes agree but for edges.
    assert ours["detection_rate"] == 1.0
    assert ours["pck"] >= 0.85 and ours["keypoint_error_norm"] < 0.05
    assert ours["mask_iou"] >= 0.85
    # control: nothing to find in a uniform grey frame
    assert blank["detection_rate"] == 0.0 and blank["pck"] == 0.0 and blank["mask_iou"] == 0.0
