"""(condition, target) training pairs from one or several passes folders.

Each frame gives the condition passes stacked on channels (``diffusion.conditioning.load_condition``,
the function the ControlNet method uses at generation time, called on the whole clip so per-clip
depth normalisation is the same in training and generation) and the target pass (``rgb``), both
through the folder's one ``Framing`` (same resize and centre crop), so skeletons stay on the body.

Caption of a frame (choice; meta.json schema 1 defines no caption): the frame entry's ``caption``,
else meta.json's top-level ``caption``, else the config's ``prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffusion.conditioning import ConditionSequence, Framing, load_condition
from diffusion.passes import PassesFolder
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


def caption(folder: PassesFolder, position: int, prompt: str) -> str:
    """Frame caption, else folder caption, else ``prompt``."""
    return folder.meta["frames"][position].get("caption") or folder.meta.get("caption") or prompt


@dataclass
class _Clip:
    folder: PassesFolder
    framing: Framing
    condition: ConditionSequence


class PassPairs(torch.utils.data.Dataset):
    """Items: ``pixel_values`` (3, H, W) target in [-1, 1], ``conditioning_pixel_values`` (C, H, W)
    in [0, 1], ``caption`` (str). Conditions of all clips are held in memory as uint8 (what the
    ControlNet method holds for one clip: H * W * C bytes per frame); targets are read per item."""

    def __init__(self, folders: list[PassesFolder], passes: list[str], size: tuple[int, int], channels: int,
                 target: str = "rgb", prompt: str = "", multiple: int = 8):
        self.target, self.prompt = target, prompt
        self.clips: list[_Clip] = []
        self.items: list[tuple[int, int]] = []
        for folder in folders:
            framing = Framing.cover(folder.resolution, size, multiple=multiple)
            condition = load_condition(folder, passes, folder.indices, framing, channels)
            self.items += [(len(self.clips), k) for k in range(len(folder.indices))]
            self.clips.append(_Clip(folder, framing, condition))

    @property
    def channels(self) -> int:
        return self.clips[0].condition.channels

    def __len__(self) -> int:
        return len(self.items)

    def target_image(self, index: int) -> np.ndarray:
        """(H, W, 3) float32 in [0, 1]: the target pass of item ``index``, framed."""
        clip_index, k = self.items[index]
        clip = self.clips[clip_index]
        image = clip.folder.read(self.target, clip.folder.indices[k])[..., :3]
        return clip.framing.image(np.ascontiguousarray(image))

    def __getitem__(self, index: int) -> dict:
        clip_index, k = self.items[index]
        clip = self.clips[clip_index]
        target = torch.from_numpy(np.ascontiguousarray(self.target_image(index))).permute(2, 0, 1)
        return {"pixel_values": target * 2.0 - 1.0,
                "conditioning_pixel_values": clip.condition.window(k, k + 1)[0],
                "caption": caption(clip.folder, k, self.prompt)}
