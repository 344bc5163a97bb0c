"""Pose fidelity of generated frames: keypoints of a detector against our projected OpenPose-18
keypoints, and the generated actor's silhouette against our mask.

Keypoint error (our choice of protocol, after PCK of Andriluka et al. 2014 with a box scale):
for one actor in one frame, only ground-truth keypoints with ``visible = 1`` count; the scale s
is the longer side of the box around them. A keypoint is *detected* when the detector's score is
at least ``score_threshold``. Reported: mean pixel error over detected visible keypoints, the same
divided by s, and PCK@alpha = fraction of visible keypoints detected within alpha * s
(undetected ones are misses), alpha = 0.1.

Detectors: an RTMPose / DWPose top-down ONNX model run through rtmlib (``pip install rtmlib
onnxruntime``; optional, not a dependency), or MediaPipe Pose (``diffusion.evaluation.mediapipe_pose``).
We give either the actor's box from our own keypoints. RTMPose needs no person detector: its first
17 outputs are COCO body keypoints (true for RTMPose body models and DWPose whole-body models),
reordered to OpenPose-18 with the neck as the shoulders' midpoint. MediaPipe also says whether it
found a person in the box (detection rate: the share of ground-truth actors found) and gives the
person's mask.

Mask IoU: a TorchScript segmenter maps RGB (1, 3, H, W) in [0, 1] to the foreground probability
(H x W after squeezing); it is thresholded at 0.5 and compared with our mask pass. Without one,
MediaPipe's masks of the actors it found (united) are compared instead.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.keypoints import openpose18_rows

PCK_ALPHA = 0.1
SCORE_THRESHOLD = 0.3
# The detector's COCO-17 keypoint order (the COCO dataset's).
COCO17 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle"]


@dataclass
class Detection:
    """What a detector returns for one actor's box."""
    keypoints: np.ndarray                 # (18, 2) OpenPose-18, pixels
    scores: np.ndarray                    # (18,)
    person: bool | None = None            # a person found in the box (None: top-down, always answers)
    mask: np.ndarray | None = None        # (H, W) the person's pixels in the whole frame, when segmented


def _openpose18_from_coco17() -> list[tuple[np.ndarray, np.ndarray]]:
    """Per OpenPose-18 point, (COCO-17 indices, weights), from motion.keypoints' mapping (neck = mean of
    the shoulders), applied to one-hot rows."""
    return openpose18_rows({name: (np.array([k]), np.array([1.0])) for k, name in enumerate(COCO17)})


def coco17_to_openpose18(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder (17, 2) COCO keypoints and their scores to OpenPose-18 (a derived point, the neck, scores
    the least of its sources)."""
    rows = _openpose18_from_coco17()
    kp = np.stack([weights @ np.asarray(keypoints, dtype=np.float64)[ids] for ids, weights in rows])
    sc = np.array([np.min(np.asarray(scores, dtype=np.float64)[ids]) for ids, _ in rows])
    return kp, sc


def keypoint_box(gt: np.ndarray) -> np.ndarray | None:
    """(x0, y0, x1, y1) around the visible ground-truth keypoints (rows x, y, visible); None if none."""
    vis = gt[:, 2] > 0
    if not vis.any():
        return None
    xy = gt[vis, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def keypoint_errors(gt: np.ndarray, detected: np.ndarray, scores: np.ndarray,
                    alpha: float = PCK_ALPHA, score_threshold: float = SCORE_THRESHOLD) -> dict[str, float]:
    """Pixel error, box-normalised error and PCK@alpha of one actor (see module doc); nan where undefined."""
    gt = np.asarray(gt, dtype=np.float64)
    box = keypoint_box(gt)
    if box is None:
        return {"keypoint_error_px": math.nan, "keypoint_error_norm": math.nan, "pck": math.nan}
    scale = max(box[2] - box[0], box[3] - box[1], 1.0)
    vis = gt[:, 2] > 0
    found = vis & (np.asarray(scores) >= score_threshold)
    dist = np.linalg.norm(np.asarray(detected, dtype=np.float64) - gt[:, :2], axis=1)
    err = float(dist[found].mean()) if found.any() else math.nan
    return {"keypoint_error_px": err, "keypoint_error_norm": err / scale,
            "pck": float(np.sum(found & (dist <= alpha * scale)) / vis.sum())}


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """|A and B| / |A or B| of two boolean masks; nan when both are empty."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else math.nan


class KeypointDetector:
    """Top-down RTMPose/DWPose ONNX model through rtmlib; boxes come from our keypoints."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_file():
            raise UserError(path, "no such ONNX pose model")
        import onnxruntime
        from rtmlib import RTMPose

        shape = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
        height, width = int(shape[2]), int(shape[3])
        self.model = RTMPose(str(path), model_input_size=(width, height), backend="onnxruntime", device="cpu")

    def detect(self, frame_rgb: np.ndarray, box: np.ndarray) -> Detection:
        """OpenPose-18 keypoints (18, 2) and scores (18,) of the person in ``box`` (x0, y0, x1, y1)."""
        pad = 0.1 * max(box[2] - box[0], box[3] - box[1])
        padded = [box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad]
        keypoints, scores = self.model(np.ascontiguousarray(frame_rgb[..., ::-1]), bboxes=[padded])
        return Detection(*coco17_to_openpose18(np.asarray(keypoints)[0, :17], np.asarray(scores)[0, :17]))


def optional_detector_missing() -> str | None:
    """Why the ONNX pose detector cannot run here (None when rtmlib and onnxruntime import)."""
    try:
        import onnxruntime  # noqa: F401
        import rtmlib  # noqa: F401
    except ImportError as exc:
        return f"needs rtmlib and onnxruntime ({exc.name} is not installed: pip install rtmlib onnxruntime)"
    return None


def segment(net, frame: np.ndarray, where: object) -> np.ndarray:
    """Foreground mask (H, W) of a [0, 1] RGB frame from a TorchScript segmenter."""
    from diffusion.evaluation.feature_metrics import network_features, to_tensor

    h, w = frame.shape[:2]
    prob = network_features(net, to_tensor([frame]), where).reshape(-1)
    if prob.size != h * w:
        raise UserError(where, f"segmenter returned {prob.size} values for a {w}x{h} frame (expected one per pixel)")
    return prob.reshape(h, w) >= 0.5
