"""What ``avatarcine eval`` compares: generated frames and a ground-truth passes folder.

Generated frames: ``PRED_DIR/frames/NNNNNN.png`` (what ``avatarcine generate`` writes) or
``PRED_DIR/NNNNNN.png`` (RGB or RGBA, 8 or 16 bit), paired with the ground truth by frame number
(the file name's number is the frame's ``index`` in meta.json); both must hold the same frames.
Ground truth: a passes folder (render/meta.py) with the ``rgb`` pass and, for the metrics that need
them, the passes of kind ``mask`` (instance id, 0 = background), ``flow`` (float EXR, forward flow
to the next frame in pixels, x right, y down, channels named by ``exr_channels``) and
``depth_float`` (float EXR, planar depth in metres, >= 1e9 where empty). Passes written without a
``kind`` are found by name (``mask``; ``flow``; ``depth_float`` or ``depth`` when EXR).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from diffusion.io.passes import PassesFolder
from render.images import read_rgb
from motion.errors import UserError
from render.meta import frame_path, frame_ranges

_FRAME_NAME = re.compile(r"\d{6}\.png")


def prediction_frames(pred_dir: str | os.PathLike, indices: list[int]) -> list[Path]:
    """The generated frame of each ground-truth frame number in ``indices``: ``NNNNNN.png`` in
    ``PRED_DIR/frames/`` or ``PRED_DIR``. A UserError naming the folder when it has none of them,
    lacks some, or has frames the ground truth does not."""
    root = Path(pred_dir)
    if not root.is_dir():
        raise UserError(root, "no such folder of generated frames")
    for folder in (root / "frames", root):
        numbered = ({int(p.stem): p for p in folder.glob("*.png") if _FRAME_NAME.fullmatch(p.name)}
                    if folder.is_dir() else {})
        if numbered:
            break
    else:
        others = sorted(p.name for p in [*root.glob("*.png"), *root.glob("frames/*.png")])
        found = f"; found {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}" if others else ""
        raise UserError(root, f"no frames named NNNNNN.png (the frame number, 6 digits) here or in frames/{found}")
    have = sorted(numbered)
    missing = [i for i in indices if i not in numbered]
    extra = sorted(set(have) - set(indices))
    if len(missing) == len(indices):
        raise UserError(folder, f"has frames {frame_ranges(have)}, none of the ground truth's {frame_ranges(indices)}")
    if missing:
        raise UserError(folder, f"lacks frames {frame_ranges(missing)} of the ground truth's {frame_ranges(indices)}")
    if extra:
        raise UserError(folder, f"has frames {frame_ranges(extra)} the ground truth lacks (it has "
                                f"{frame_ranges(indices)})")
    return [numbered[i] for i in indices]


class GroundTruth:
    """Frames of a passes folder by position in the clip (0 .. n-1)."""

    def __init__(self, root: str | os.PathLike):
        self.folder = PassesFolder.open(root)
        self.root = self.folder.root
        self.meta = self.folder.meta
        if "rgb" not in self.meta["passes"]:
            raise UserError(self.root / "meta.json", "no 'rgb' pass: nothing to compare the generated frames with")
        if self.meta["passes"]["rgb"].get("ext", "png") != "png":
            raise UserError(self.root / "meta.json", "the 'rgb' pass must be PNG (display-referred sRGB) for evaluation")
        self.indices = self.folder.indices

    def __len__(self) -> int:
        return len(self.indices)

    def has(self, pass_name: str) -> bool:
        return pass_name in self.meta["passes"]

    def pass_of_kind(self, kind: str, names: tuple[str, ...], ext: str | None = None) -> str | None:
        """The pass declaring ``kind``, else the first of ``names`` present (with extension ``ext``)."""
        passes = self.meta["passes"]
        for name, info in passes.items():
            if info.get("kind") == kind:
                return name
        return next((n for n in names if n in passes and (ext is None or passes[n].get("ext") == ext)), None)

    @property
    def mask_pass(self) -> str | None:
        return self.pass_of_kind("mask", ("mask",))

    @property
    def flow_pass(self) -> str | None:
        return self.pass_of_kind("flow", ("flow",), "exr")

    @property
    def depth_pass(self) -> str | None:
        return self.pass_of_kind("depth_float", ("depth_float", "depth"), "exr")

    def _path(self, pass_name: str, i: int) -> Path:
        return frame_path(self.root, self.meta, pass_name, self.indices[i])

    def rgb(self, i: int) -> np.ndarray:
        return read_rgb(self._path("rgb", i), "PNG")

    def mask(self, i: int) -> np.ndarray:
        """Boolean actor mask (any actor)."""
        return self.folder.read(self.mask_pass, self.indices[i])[..., 0] > 0

    def _float(self, pass_name: str, i: int, n_channels: int) -> np.ndarray:
        """The channels ``exr_channels`` names, in that order (render/passio.py), as float64."""
        if self.meta["passes"][pass_name].get("ext") != "exr":
            raise UserError(self.root / "meta.json", f"pass {pass_name!r} must be float EXR for evaluation")
        data = self.folder.read(pass_name, self.indices[i])
        if data.shape[2] < n_channels:
            raise UserError(self._path(pass_name, i), f"has {data.shape[2]} channels, expected >= {n_channels}")
        return data[..., :n_channels].astype(np.float64)

    def flow(self, i: int) -> np.ndarray:
        """(H, W, 2) forward flow from frame i to i+1 in pixels."""
        return self._float(self.flow_pass, i, 2)

    def depth(self, i: int) -> np.ndarray:
        """(H, W) depth in metres (>= 1e9 or inf: empty)."""
        return self._float(self.depth_pass, i, 1)[..., 0]

    def keypoints(self, i: int) -> dict[str, np.ndarray]:
        """{actor: (18, 3) OpenPose-18 [x, y, visible]} of frame i (actors without them left out)."""
        out = {}
        for name, actor in self.meta["frames"][i].get("actors", {}).items():
            kp = actor.get("keypoints2d", {}).get("openpose18")
            if kp is not None:
                out[name] = np.asarray(kp, dtype=np.float64).reshape(-1, 3)
        return out
