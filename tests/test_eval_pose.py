"""Pose fidelity math on synthetic detections, and the optional detectors' skip paths."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from diffusion.evaluation import pose_metrics as pm
from diffusion.evaluation.mediapipe_pose import mediapipe_missing
from render.meta import OPENPOSE18

COCO17 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle"]


def test_coco_to_openpose_by_name():
    coco = np.arange(34, dtype=float).reshape(17, 2)
    scores = np.linspace(0.1, 0.9, 17)
    kp, sc = pm.coco17_to_openpose18(coco, scores)
    for op_index, name in enumerate(OPENPOSE18):
        if name == "neck":
            np.testing.assert_allclose(kp[op_index], (coco[5] + coco[6]) / 2)
            assert sc[op_index] == min(scores[5], scores[6])
        else:
            np.testing.assert_array_equal(kp[op_index], coco[COCO17.index(name)])
            assert sc[op_index] == scores[COCO17.index(name)]


def test_keypoint_errors_hand_computed():
    gt = np.zeros((18, 3))
    gt[:, 0] = np.linspace(100, 200, 18)                  # box 100 wide ...
    gt[:, 1] = np.linspace(50, 90, 18)                    # ... 40 high: scale 100
    gt[:, 2] = 1
    gt[9, 2] = 0                                          # invisible: ignored everywhere
    det = gt[:, :2].copy()
    det[0] += [3, 4]                                      # 5 px off: within 0.1 * 100
    det[1] += [0, 20]                                     # 20 px off: a PCK miss
    det[9] += [500, 500]                                  # invisible, any error ignored
    scores = np.ones(18)
    scores[2] = 0.0                                       # not detected: PCK miss, no pixel error
    e = pm.keypoint_errors(gt, det, scores)
    assert e["keypoint_error_px"] == pytest.approx(25 / 16)   # (5 + 20 + 14 * 0) over 16 detected
    assert e["keypoint_error_norm"] == pytest.approx(25 / 16 / 100)
    assert e["pck"] == pytest.approx(15 / 17)             # 17 visible, misses: #1 (too far) and #2 (undetected)
    gt[:, 2] = 0
    assert math.isnan(pm.keypoint_errors(gt, det, scores)["pck"])


def test_mask_iou_hand_computed():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:4, 0:5] = True                                    # 20 pixels
    b[2:6, 0:5] = True                                    # 20 pixels, 10 shared
    assert pm.mask_iou(a, b) == pytest.approx(10 / 30)
    assert pm.mask_iou(a, a) == 1.0
    assert math.isnan(pm.mask_iou(np.zeros((3, 3)), np.zeros((3, 3))))


@pytest.mark.parametrize("missing, modules, hint", [
    (pm.optional_detector_missing, ("onnxruntime", "rtmlib"), "pip install rtmlib onnxruntime"),
    (mediapipe_missing, ("mediapipe",), "pip install 'avatarcine[eval]'"),
])
def test_detector_absence_is_reported_not_raised(missing, modules, hint):
    why = missing()
    if all(importlib.util.find_spec(name) for name in modules):
        assert why is None
    else:
        assert why is not None and hint in why
