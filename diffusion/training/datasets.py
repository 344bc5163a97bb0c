"""Training data from passes folders: single frames, clips of N frames, and (previous, next) pairs.

Every item gives the target pass (``rgb``: what the model learns to produce) in [-1, 1] and the
condition passes stacked on channels in [0, 1] (``diffusion.io.conditioning.load_condition``, the
function generation uses, called on the whole clip so per-clip depth normalisation is the same in
training and generation), both through the folder's one ``Framing`` (same resize and centre crop), so
skeletons stay on the body; plus the frame's caption.

Caption of a frame (choice; meta.json schema 1 defines no caption): the frame entry's ``caption``,
else meta.json's top-level ``caption``, else the config's ``prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffusion.io.conditioning import ConditionSequence, Framing, load_condition
from diffusion.io.passes import PassesFolder
from motion.errors import UserError


def open_folders(paths: list[str], passes: list[str], target: str = "rgb") -> list[PassesFolder]:
    """Open and check the passes folders: each exists, has ``target`` and every condition pass."""
    folders = []
    for path in paths:
        if not Path(path).is_dir():
            raise UserError(path, "no such passes folder")
        folder = PassesFolder.open(path)
        if target not in folder.meta["passes"]:
            present = ", ".join(sorted(folder.meta["passes"])) or "none"
            raise UserError(folder.root / "meta.json", f"no {target!r} pass to learn from (passes present: "
                                                      f"{present}); render with the {target} pass")
        if int(folder.meta["passes"][target].get("channels", 3)) < 3 or folder.is_raw_float(target):
            raise UserError(folder.root / "meta.json", f"pass {target!r} is not a colour image; the target must be one")
        for name in passes:
            folder.resolve(name)
        folders.append(folder)
    return folders


def stack_channels(folder: PassesFolder, passes: list[str]) -> int:
    """Channels of the stacked condition as ``load_condition`` builds it: raw float passes give 1
    (normalised depth), RGBA gives its 3 colour channels, others their meta.json ``channels``."""
    total = 0
    for name in passes:
        resolved = folder.resolve(name)
        info = folder.meta["passes"][resolved]
        total += 1 if folder.is_raw_float(resolved) else min(int(info.get("channels", 3)), 3)
    return total


def common_channels(folders: list[PassesFolder], passes: list[str]) -> int:
    """The stacked condition's channel count, which every folder must agree on."""
    channels = {stack_channels(f, passes) for f in folders}
    if len(channels) > 1:
        raise UserError("passes", f"the folders give different channel counts {sorted(channels)} for {'+'.join(passes)}")
    return channels.pop()


def caption(folder: PassesFolder, position: int, prompt: str) -> str:
    """Frame caption, else folder caption, else ``prompt``."""
    return folder.meta["frames"][position].get("caption") or folder.meta.get("caption") or prompt


@dataclass
class Clip:
    """One passes folder, framed, with its stacked conditions in memory (uint8)."""

    folder: PassesFolder
    framing: Framing
    condition: ConditionSequence | None

    def __len__(self) -> int:
        return len(self.folder.indices)


class PassesDataset(torch.utils.data.Dataset):
    """Base of the datasets below: clips of the folders and a list of items (clip, first frame).
    Conditions of all clips are held in memory as uint8 (H * W * C bytes per frame); targets are read
    per item."""

    def __init__(self, folders: list[PassesFolder], passes: list[str], size: tuple[int, int], channels: int,
                 target: str = "rgb", prompt: str = "", multiple: int = 8):
        self.target, self.prompt = target, prompt
        self.clips: list[Clip] = []
        for folder in folders:
            framing = Framing.cover(folder.resolution, size, multiple=multiple)
            condition = load_condition(folder, passes, folder.indices, framing, channels) if passes else None
            self.clips.append(Clip(folder, framing, condition))
        self.items = [(c, k) for c, clip in enumerate(self.clips) for k in self.starts(len(clip))]

    def starts(self, frames: int) -> range:
        """Positions in a clip of ``frames`` frames where an item starts."""
        return range(frames)

    @property
    def channels(self) -> int:
        return self.clips[0].condition.channels if self.clips[0].condition is not None else 0

    def __len__(self) -> int:
        return len(self.items)

    def target_image(self, clip: Clip, k: int) -> np.ndarray:
        """(H, W, 3) float32 in [0, 1]: the target pass of frame ``k`` of ``clip``, framed."""
        image = clip.folder.read(self.target, clip.folder.indices[k])[..., :3]
        return clip.framing.image(np.ascontiguousarray(image))

    def frame(self, clip: Clip, k: int) -> dict:
        """Target (3, H, W) in [-1, 1], condition (C, H, W) in [0, 1] and caption of one frame."""
        target = torch.from_numpy(np.ascontiguousarray(self.target_image(clip, k))).permute(2, 0, 1)
        item = {"pixel_values": target * 2.0 - 1.0, "caption": caption(clip.folder, k, self.prompt)}
        if clip.condition is not None:
            item["conditioning_pixel_values"] = clip.condition.window(k, k + 1)[0]
        return item


class FrameDataset(PassesDataset):
    """Items: single frames (``pixel_values``, ``conditioning_pixel_values``, ``caption``)."""

    def __getitem__(self, index: int) -> dict:
        c, k = self.items[index]
        return self.frame(self.clips[c], k)


class ClipDataset(PassesDataset):
    """Items: ``frames`` frames taken every ``stride`` frames of one clip, stacked on a frame axis
    (``pixel_values`` (F, 3, H, W), ``conditioning_pixel_values`` (F, C, H, W)); the caption of the
    first frame. Clips shorter than the span give no items."""

    def __init__(self, *args, frames: int = 16, stride: int = 1, **kwargs):
        if frames < 1 or stride < 1:
            raise UserError("frames/stride", f"need frames >= 1 and stride >= 1, got {frames}, {stride}")
        self.frames, self.stride = frames, stride
        super().__init__(*args, **kwargs)
        if not self.items:
            raise UserError("data", f"no clip has the {self.span} frames a {frames}-frame item at stride {stride} spans")

    @property
    def span(self) -> int:
        return (self.frames - 1) * self.stride + 1

    def starts(self, frames: int) -> range:
        return range(max(0, frames - self.span + 1))

    def __getitem__(self, index: int) -> dict:
        c, k = self.items[index]
        parts = [self.frame(self.clips[c], k + j * self.stride) for j in range(self.frames)]
        item = {key: torch.stack([p[key] for p in parts]) for key in parts[0] if key != "caption"}
        item["caption"] = parts[0]["caption"]
        return item


class PairDataset(PassesDataset):
    """Items: frame k+1 with the target of frame k as ``previous_pixel_values`` (3, H, W) in [-1, 1]
    (Dancing Avatar's inter-frame pairs); the caption is frame k+1's."""

    def starts(self, frames: int) -> range:
        return range(frames - 1)

    def __getitem__(self, index: int) -> dict:
        c, k = self.items[index]
        clip = self.clips[c]
        item = self.frame(clip, k + 1)
        item["previous_pixel_values"] = self.frame(clip, k)["pixel_values"]
        return item
