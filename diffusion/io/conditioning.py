"""Pass images -> condition tensors as ControlNets expect them, aligned with the generated frame.

ControlNet conditions are float tensors in [0, 1], (frames, channels, H, W), RGB order, the same
values diffusers' ``control_image_processor`` gives (it does not normalise to [-1, 1]):
openpose skeleton and normal map as rendered; depth near-bright, normalised per clip (per-frame
normalisation flickers) by render.depthmap's encoding; 1-channel passes replicated to 3 channels for
stock ControlNets; several passes stacked on channels for custom-channel ControlNets.

Framing: every pass goes through the same resize (cv2 INTER_AREA, exact scale factors per axis)
and the same integer centre crop, so keypoints map by ``x' = x * sx - ox``, ``y' = y * sy - oy``
(pixel-corner coordinates, as in meta.json) and masks stay aligned with skeletons.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from diffusion.io.passes import PassesFolder
from motion.errors import UserError
from render import pass_table
from render.depthmap import depth_range, encode_depth, meta_depth_range

# Passes holding flat label colours or ids: resized with nearest neighbour (never blended).
LABEL_PASSES = pass_table.label_outputs()


@dataclass(frozen=True)
class Framing:
    """Source (w, h) -> output (W, H): resize by (sx, sy) to (rw, rh), then crop at (ox, oy)."""

    source: tuple[int, int]
    size: tuple[int, int]
    resized: tuple[int, int]
    offset: tuple[int, int]

    @classmethod
    def cover(cls, source: tuple[int, int], size: tuple[int, int] | None = None, multiple: int = 8) -> "Framing":
        """Scale to cover ``size`` and centre-crop (no padding, aspect kept). Without ``size``, keep the
        source scale and crop to a multiple of ``multiple`` (what the VAE/UNet need)."""
        w, h = source
        if size is None:
            size = (w - w % multiple, h - h % multiple)
        W, H = size
        if W % multiple or H % multiple or W < multiple or H < multiple:
            raise UserError("--width/--height", f"{W}x{H} must be positive multiples of {multiple}")
        scale = max(W / w, H / h)
        resized = (max(W, round(w * scale)), max(H, round(h * scale)))
        offset = ((resized[0] - W) // 2, (resized[1] - H) // 2)
        return cls(tuple(source), (W, H), resized, offset)

    @property
    def scale(self) -> tuple[float, float]:
        return self.resized[0] / self.source[0], self.resized[1] / self.source[1]

    def points(self, xy: np.ndarray) -> np.ndarray:
        """Map (..., 2) pixel-corner coordinates of the source to the output frame."""
        sx, sy = self.scale
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = out[..., 0] * sx - self.offset[0]
        out[..., 1] = out[..., 1] * sy - self.offset[1]
        return out

    def image(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """Resize + crop an (H, W, C) image; channels kept."""
        if (image.shape[1], image.shape[0]) != self.resized:
            shrinking = self.resized[0] < image.shape[1]
            interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
            resized = cv2.resize(image, self.resized, interpolation=interp)
            image = resized.reshape(self.resized[1], self.resized[0], image.shape[2])
        ox, oy = self.offset
        return image[oy:oy + self.size[1], ox:ox + self.size[0]]


def depth_near_far(folder: PassesFolder, name: str) -> tuple[float, float]:
    """The clip's (near, far) for metric depth pass ``name``: meta.json's (render.depthmap.meta_depth_range),
    computed over every frame of the folder only when meta.json has none (folders from other tools)."""
    return meta_depth_range(folder.meta, name) or depth_range(folder.read(name, i)[..., 0] for i in folder.indices)


@dataclass
class ConditionSequence:
    """One ControlNet's condition for every frame: (N, H, W, C) uint8 (value * 255) in CPU memory.

    8 bits are exact for PNG passes and keep a long clip small (0.75 MB per frame and 3 channels at
    512x512); tensors are made one window at a time."""

    passes: tuple[str, ...]
    frames: np.ndarray

    @property
    def channels(self) -> int:
        return self.frames.shape[-1]

    def window(self, start: int, stop: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Frames [start, stop) as a contiguous (F, C, H, W) tensor in [0, 1]. Contiguous NCHW, as
        diffusers' image processor gives it: a channels-last view makes convolutions pick other kernels,
        whose rounding differs on some CPUs (AVX2) from the pipeline's."""
        x = torch.from_numpy(np.ascontiguousarray(self.frames[start:stop])).permute(0, 3, 1, 2).contiguous()
        return (x.to(device=device, dtype=torch.float32) / 255.0).to(dtype)

    def preview(self, index: int) -> np.ndarray:
        """An (H, W, 3) uint8 picture of the condition (first 3 channels; 1 channel as grey)."""
        x = self.frames[index]
        return np.repeat(x[..., :1], 3, axis=-1) if x.shape[-1] < 3 else x[..., :3]


def load_condition(folder: PassesFolder, names: list[str], indices: list[int], framing: Framing,
                   channels: int) -> ConditionSequence:
    """Stack passes ``names`` (pass names or condition kinds) on channels for a ControlNet with
    ``channels`` input channels. A single 1-channel pass feeding a 3-channel ControlNet is replicated.
    Frame by frame (memory: the uint8 result); raw float (metric depth) passes are encoded like
    render/'s depth PNGs (render.depthmap.encode_depth, 8 bit: near 255, far 1, background 0) with the
    clip's range (:func:`depth_near_far`)."""
    resolved = [folder.resolve(n) for n in names]
    ranges = {name: depth_near_far(folder, name) for name in resolved if folder.is_raw_float(name)}
    out = np.empty((len(indices), framing.size[1], framing.size[0], channels), np.uint8)
    for k, index in enumerate(indices):
        parts = []
        for name in resolved:
            image = framing.image(folder.read(name, index), nearest=name in LABEL_PASSES)
            if name in ranges:
                image = encode_depth(image[..., 0], *ranges[name])[..., None] / 255.0
            elif image.shape[-1] == 4:  # RGBA: the colour is the condition, alpha is the mask pass's job
                image = image[..., :3]
            parts.append(image)
        frame = np.concatenate(parts, axis=-1)
        if len(parts) == 1 and frame.shape[-1] == 1 and channels == 3:
            frame = np.repeat(frame, 3, axis=-1)
        if frame.shape[-1] != channels:
            raise UserError("+".join(resolved), f"gives {frame.shape[-1]} channels but the ControlNet takes {channels}")
        out[k] = np.round(np.clip(frame, 0.0, 1.0) * 255.0)
    return ConditionSequence(tuple(resolved), out)


def load_mask(folder: PassesFolder, indices: list[int], framing: Framing, name: str = "mask") -> np.ndarray:
    """(N, H, W) uint8 actor coverage (255 = actor) from the mask pass (first channel; alpha if RGBA)."""
    resolved = folder.resolve(name)
    out = np.empty((len(indices), framing.size[1], framing.size[0]), np.uint8)
    for k, index in enumerate(indices):
        image = folder.read(resolved, index)
        channel = image[..., 3:4] if image.shape[-1] == 4 else image[..., :1]
        out[k] = np.round(np.clip(framing.image(channel)[..., 0], 0.0, 1.0) * 255.0)
    return out
