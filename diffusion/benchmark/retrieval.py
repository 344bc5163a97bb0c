"""The "copy the nearest training frame" baseline: a learned method has to beat retrieval.

For every query frame the baseline returns the ``rgb`` of the training frame whose 2D pose is
closest. Distance (choice: keypoints, not skeleton images, so that a limb drawn one pixel off costs a
pixel, not a whole stroke): the frame's OpenPose-18 keypoints from ``meta.json`` (``keypoints2d``,
the points the skeleton pass draws), in units of the image width,

    d(q, t) = ( sum_{j visible in both} |q_j - t_j| + MISSING * #{j visible in exactly one} )
              / #{j visible in either}

with ``MISSING`` = 0.5 (a joint seen in one frame only costs as much as one half a frame off).
Pixel positions are compared as they are (no centring or scaling), so the camera matters as much as
the pose: the retrieved frame is the best whole-image match, which is what the rgb metrics score.
Ties go to the earliest training frame (clip order, then frame order): deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion.io.passes import PassesFolder
from diffusion.io.output import Generation

MISSING = 0.5
KEYPOINTS = "openpose18"


def frame_keypoints(folder: PassesFolder) -> np.ndarray:
    """(N, K, 3) [x / W, y / W, visible] of the first actor in every frame of ``folder``."""
    actor = folder.meta["actors"][0]["name"]
    width = folder.resolution[0]
    rows = []
    for position in range(len(folder.indices)):
        kp = folder.keypoints(position, actor, KEYPOINTS).copy()
        visible = (kp[:, 2] > 0) & np.isfinite(kp[:, :2]).all(1)
        kp[:, :2] = np.where(visible[:, None], kp[:, :2] / width, 0.0)
        kp[:, 2] = visible
        rows.append(kp)
    return np.stack(rows)


def pose_distances(query: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """d(query, key) of one (K, 3) query against (N, K, 3) keys (see the module doc)."""
    qv, kv = query[None, :, 2] > 0, keys[..., 2] > 0
    both, either = qv & kv, qv | kv
    gaps = np.linalg.norm(keys[..., :2] - query[None, :, :2], axis=-1)
    total = np.where(both, gaps, 0.0).sum(1) + MISSING * (either & ~both).sum(1)
    return total / np.maximum(either.sum(1), 1)


@dataclass
class TrainingFrames:
    """Keypoints of every training frame and where its rgb lives."""

    folders: list[PassesFolder]
    names: list[str]
    keypoints: np.ndarray          # (N, K, 3)
    refs: list[tuple[int, int]]    # (folder number, frame position)

    @classmethod
    def index(cls, folders: list[str | Path], names: list[str] | None = None) -> "TrainingFrames":
        opened = [PassesFolder.open(f) for f in folders]
        kps, refs = [], []
        for i, folder in enumerate(opened):
            kp = frame_keypoints(folder)
            kps.append(kp)
            refs += [(i, k) for k in range(len(kp))]
        return cls(opened, names or [f.root.name for f in opened], np.concatenate(kps), refs)

    def nearest(self, query: np.ndarray) -> tuple[int, float]:
        """(training frame number, distance) of the closest frame to one (K, 3) query."""
        d = pose_distances(query, self.keypoints)
        best = int(np.argmin(d))
        return best, float(d[best])

    def rgb(self, number: int) -> np.ndarray:
        folder_no, position = self.refs[number]
        folder = self.folders[folder_no]
        image = folder.read("rgb", folder.indices[position])[..., :3]
        return np.rint(image * 255.0).astype(np.uint8)


def retrieve(train: TrainingFrames, passes: PassesFolder) -> Generation:
    """The nearest training frame's rgb for every frame of ``passes`` (resized to its resolution)."""
    import cv2

    queries = frame_keypoints(passes)
    w, h = passes.resolution
    frames, matches = [], []
    for query in queries:
        number, distance = train.nearest(query)
        image = train.rgb(number)
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        frames.append(image)
        folder_no, position = train.refs[number]
        matches.append({"clip": train.names[folder_no], "frame": train.folders[folder_no].indices[position],
                        "distance": distance})
    skeleton = passes.resolve("openpose")
    preview = np.stack([np.rint(passes.read(skeleton, i)[..., :3] * 255).astype(np.uint8) for i in passes.indices])
    record = {"method": "retrieval", "distance": f"openpose18 keypoints, missing joint cost {MISSING}",
              "matches": matches}
    return Generation(frames=np.stack(frames), condition_preview=preview, fps=passes.fps, indices=passes.indices,
                      record=record)
