"""Reading a passes folder (the contract in ``render/meta.py``): frames, pass images, keypoints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motion.errors import UserError
from render import pass_table
from render.exr import read_exr
from render.images import read_image
from render.meta import frame_path, read_meta
from render.passio import pick_channels

# Condition kind -> the pass names that may hold it, first match wins (render.pass_table).
PASS_ALIASES = pass_table.condition_aliases()


@dataclass
class PassesFolder:
    root: Path
    meta: dict

    @classmethod
    def open(cls, root: str | os.PathLike) -> "PassesFolder":
        return cls(Path(root), read_meta(root))

    @property
    def indices(self) -> list[int]:
        return [int(f["index"]) for f in self.meta["frames"]]

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def resolution(self) -> tuple[int, int]:
        w, h = self.meta["resolution"]
        return int(w), int(h)

    def resolve(self, name: str) -> str:
        """A pass name present in the folder, from a pass name or a condition kind (see PASS_ALIASES)."""
        if name in self.meta["passes"]:
            return name
        for candidate in PASS_ALIASES.get(name, ()):
            if candidate in self.meta["passes"]:
                return candidate
        present = ", ".join(sorted(self.meta["passes"])) or "none"
        raise UserError(self.root / "meta.json", f"no pass {name!r} (passes present: {present})")

    def read(self, pass_name: str, index: int) -> np.ndarray:
        """One frame of one pass as (H, W, C) float32: PNGs scaled to [0, 1] (RGB order), EXR raw."""
        path = frame_path(self.root, self.meta, pass_name, index)
        info = self.meta["passes"][pass_name]
        if info.get("ext") == "exr":
            if not path.is_file():
                raise UserError(path, "missing pass image")
            image = pick_channels(read_exr(path), info.get("exr_channels"), path)
        else:
            image = read_image(path, "pass image")
        w, h = self.resolution
        if image.shape[:2] != (h, w):
            raise UserError(path, f"is {image.shape[1]}x{image.shape[0]}, meta.json says {w}x{h}")
        if image.dtype == np.uint8:
            return image.astype(np.float32) / 255.0
        if image.dtype == np.uint16:
            return image.astype(np.float32) / 65535.0
        return image.astype(np.float32)

    def is_raw_float(self, pass_name: str) -> bool:
        return self.meta["passes"][pass_name].get("dtype") == "float32"

    def keypoints(self, index_in_clip: int, actor: str, kind: str = "openpose18") -> np.ndarray:
        """(K, 3) keypoints [x_px, y_px, visible] of one actor in one frame (position in ``frames``)."""
        frame = self.meta["frames"][index_in_clip]
        return np.asarray(frame["actors"][actor]["keypoints2d"][kind], dtype=np.float64)
