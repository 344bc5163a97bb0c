"""MediaPipe Pose as the pose detector of ``avatarcine eval --pose-detector mediapipe`` (the
``avatarcine[eval]`` extra). The mediapipe 0.10.14 wheel ships BlazePose's person detector, its full
landmark model and that model's segmentation head, so nothing is downloaded (``model_complexity=1``;
the lite and heavy models are not in the wheel).

Each ground-truth actor's keypoint box, padded by a quarter of its longer side, is cut from the frame
and processed on its own as a still image (no tracking: a frame always gives the same answer), so
every actor is matched with its own detection. A crop in which MediaPipe finds no person is a miss:
every keypoint undetected, an empty mask.

The 33 MediaPipe landmarks map to OpenPose-18 by name: nose, eyes (MediaPipe's centre eye points),
ears, shoulders, elbows, wrists, hips, knees and ankles are COCO's 17 points, taken in COCO order and
mapped like COCO (``pose_metrics.coco17_to_openpose18``), the neck being the shoulders' midpoint. A
landmark's score is MediaPipe's visibility (the probability that it is in view and not occluded);
the person's mask is the segmentation probability thresholded at 0.5.
"""

from __future__ import annotations

import math

import numpy as np

from diffusion.evaluation.pose_metrics import Detection, coco17_to_openpose18

MEDIAPIPE = "mediapipe"
# MediaPipe Pose landmark index of each COCO-17 point, in pose_metrics.COCO17 order.
COCO17_IN_MEDIAPIPE33 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
BOX_PAD = 0.25


def mediapipe_missing() -> str | None:
    """Why MediaPipe cannot run here (None when it imports)."""
    try:
        import mediapipe  # noqa: F401
    except ImportError as exc:
        return f"mediapipe needs the eval extra ({exc.name} is not installed: pip install 'avatarcine[eval]')"
    return None


def openpose18_from_mediapipe33(landmarks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(33, 2) MediaPipe landmarks and their scores -> OpenPose-18 keypoints (18, 2) and scores (18,)."""
    picked = list(COCO17_IN_MEDIAPIPE33)
    return coco17_to_openpose18(np.asarray(landmarks)[picked], np.asarray(scores)[picked])


class MediaPipePose:
    """MediaPipe's pose landmarker and person segmentation, one crop per ground-truth actor."""

    def __init__(self):
        from mediapipe.python.solutions import pose

        self._pose = pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True)

    def detect(self, frame_rgb: np.ndarray, box: np.ndarray) -> Detection:
        """The person in ``box`` (x0, y0, x1, y1 pixels) of an (H, W, 3) uint8 RGB frame."""
        h, w = frame_rgb.shape[:2]
        pad = BOX_PAD * max(box[2] - box[0], box[3] - box[1], 1.0)
        x0, y0 = max(math.floor(box[0] - pad), 0), max(math.floor(box[1] - pad), 0)
        x1, y1 = min(math.ceil(box[2] + pad), w), min(math.ceil(box[3] + pad), h)
        mask = np.zeros((h, w), bool)
        result = self._pose.process(np.ascontiguousarray(frame_rgb[y0:y1, x0:x1, :3]))
        if result.pose_landmarks is None:
            return Detection(np.zeros((18, 2)), np.zeros(18), person=False, mask=mask)
        marks = np.array([[p.x, p.y, p.visibility] for p in result.pose_landmarks.landmark])
        keypoints, scores = openpose18_from_mediapipe33(marks[:, :2] * [x1 - x0, y1 - y0] + [x0, y0], marks[:, 2])
        mask[y0:y1, x0:x1] = result.segmentation_mask >= 0.5
        return Detection(keypoints, scores, person=True, mask=mask)
