"""What ``avatarcine eval`` compares: generated frames and a ground-truth passes folder.

Generated frames: ``PRED_DIR/frames/NNNNNN.png`` (what ``avatarcine generate`` writes) or
``PRED_DIR/NNNNNN.png`` (RGB or RGBA, 8 or 16 bit), matched to the ground truth by order.
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

from diffusion.passes import PassesFolder
from motion.errors import UserError
from render.exr import read_exr
from render.meta import frame_path

_FRAME_NAME = re.compile(r"\d{6}\.png")
_CHANNEL_ORDER = {name: i for i, name in enumerate("RGBAXYZW")}


def prediction_frames(pred_dir: str | os.PathLike) -> list[Path]:
    """Sorted ``NNNNNN.png`` files of a generated video folder (``frames/`` subfolder or directly)."""
    root = Path(pred_dir)
    if not root.is_dir():
        raise UserError(root, "no such folder of generated frames")
    for folder in (root / "frames", root):
        frames = sorted(p for p in folder.glob("*.png") if _FRAME_NAME.fullmatch(p.name)) if folder.is_dir() else []
        if frames:
            return frames
    raise UserError(root, "no frames NNNNNN.png here or in frames/")


def read_png_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) float64 RGB in [0, 1] of an 8/16-bit grey, RGB or RGBA PNG (alpha dropped)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(path, "missing or unreadable PNG")
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    else:
        image = image[..., 2::-1] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    return image.astype(np.float64) / scale


def read_float_pass(path: Path, channels: list[str] | None = None) -> np.ndarray:
    """(H, W, C) float64 of a float EXR pass: the named ``channels`` (a name matches a full channel
    name or its last dotted part), else all channels ordered R, G, B, A / X, Y, Z, W, then by name."""
    if not path.is_file():
        raise UserError(path, "missing pass image")
    planes = read_exr(path)
    if channels:
        by_short = {n.rsplit(".", 1)[-1]: n for n in planes}
        missing = [c for c in channels if c not in planes and c not in by_short]
        if missing:
            raise UserError(path, f"has no channel {missing[0]!r} (channels: {', '.join(sorted(planes))})")
        names = [c if c in planes else by_short[c] for c in channels]
    else:
        names = sorted(planes, key=lambda n: (_CHANNEL_ORDER.get(n.rsplit(".", 1)[-1], 99), n))
    return np.stack([planes[n] for n in names], axis=-1).astype(np.float64)


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
        return read_png_rgb(self._path("rgb", i))

    def mask(self, i: int) -> np.ndarray:
        """Boolean actor mask (any actor)."""
        return self.folder.read(self.mask_pass, self.indices[i])[..., 0] > 0

    def _float(self, pass_name: str, i: int, n_channels: int) -> np.ndarray:
        info = self.meta["passes"][pass_name]
        path = self._path(pass_name, i)
        if info.get("ext") != "exr":
            raise UserError(self.root / "meta.json", f"pass {pass_name!r} must be float EXR for evaluation")
        data = read_float_pass(path, info.get("exr_channels"))
        w, h = self.folder.resolution
        if data.shape[:2] != (h, w) or data.shape[2] < n_channels:
            raise UserError(path, f"is {data.shape[1]}x{data.shape[0]}x{data.shape[2]}, expected {w}x{h} "
                                  f"with >= {n_channels} channels")
        return data[..., :n_channels]

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
