"""The source character: image, OpenPose-18 pose and body mask, framed like the output.

- A render (``--source`` unset): frame ``--source-frame`` of the passes folder's own ``rgb`` pass,
  its meta.json keypoints (first actor) and its ``mask`` pass.
- A photo (``--source FILE``): the offline MediaPipe detector (``diffusion.evaluation.mediapipe_pose``)
  over the whole framed photo gives the pose (a point is visible when MediaPipe's visibility is at
  least 0.5) and the mask (its segmentation), unless ``--source-mask FILE`` gives the mask. A photo in
  which it finds no person is a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffusion.io.conditioning import Framing, load_mask
from diffusion.io.passes import PassesFolder
from motion.errors import UserError

VISIBLE = 0.5  # MediaPipe visibility at which a detected point counts as seen


@dataclass
class Source:
    image: np.ndarray       # (H, W, 3) uint8, framed like the output
    keypoints: np.ndarray   # (18, 3) [x, y, visible], output pixels
    mask: np.ndarray        # (H, W) uint8, 255 = character
    origin: str             # where it came from (for the run record)


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _framed_file(path: str, framing: Framing, what: str, grey: bool = False) -> np.ndarray:
    from render.images import read_rgb

    image = read_rgb(path, what)
    fit = Framing.cover((image.shape[1], image.shape[0]), framing.size, 8)
    image = fit.image(image[..., :1] if grey else image)
    return image


def render_source(passes: PassesFolder, position: int, framing: Framing, mask_pass: str) -> Source:
    """Frame ``position`` (in the clip) of the folder's ``rgb`` pass with its keypoints and mask."""
    if not 0 <= position < len(passes.indices):
        raise UserError("--source-frame", f"must be below the clip's {len(passes.indices)} frames, got {position}")
    index = passes.indices[position]
    image = _uint8(framing.image(passes.read(passes.resolve("rgb"), index)[..., :3]))
    actors = list(passes.meta["frames"][position].get("actors", {}))
    if not actors:
        raise UserError(passes.root / "meta.json", f"frame {index} has no actor keypoints for the source pose")
    points = passes.keypoints(position, actors[0]).copy()
    points[:, :2] = framing.points(points[:, :2])
    mask = load_mask(passes, [index], framing, mask_pass)[0]
    return Source(image, points, mask, f"{passes.root}/rgb frame {index}")


def photo_source(path: str, framing: Framing, mask_path: str | None) -> Source:
    """A photo, its pose and mask from MediaPipe (or ``mask_path``)."""
    from diffusion.evaluation.mediapipe_pose import MediaPipePose, mediapipe_missing

    image = _uint8(_framed_file(path, framing, "source image"))
    missing = mediapipe_missing()
    if missing:
        raise UserError("--source", f"a photo's pose comes from MediaPipe: {missing}")
    h, w = image.shape[:2]
    found = MediaPipePose().detect(image, np.array([0.0, 0.0, w, h]))
    if not found.person:
        raise UserError("--source", f"the pose detector finds no person in {path}")
    points = np.concatenate([found.keypoints, (found.scores >= VISIBLE)[:, None].astype(np.float64)], axis=1)
    if mask_path:
        mask = _uint8(_framed_file(mask_path, framing, "source mask", grey=True)[..., 0])
    else:
        mask = found.mask.astype(np.uint8) * 255
    return Source(image, points, mask, str(path))
