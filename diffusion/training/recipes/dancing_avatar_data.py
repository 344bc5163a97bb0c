"""Training data of the Dancing Avatar recipes: passes folders (their ``rgb`` target, captions from
meta.json), folders of images and video files (a user's footage; caption: a same-stem ``.txt`` beside
each image / the video, else the config's prompt). Every image gets the same scale-to-cover + centre
crop to the training size as passes do.

- :func:`frame_dataset`: single frames (the appearance LoRA: images of one character).
- :func:`pair_dataset`: (frame k, frame k+1, caption of k+1) (the inter-frame module); pairs never
  cross from one folder or video to the next.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffusion.io.conditioning import Framing
from diffusion.training.datasets import FrameDataset, PairDataset, open_folders
from motion.errors import UserError
from render.images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif")


def _caption(path: Path, prompt: str) -> str:
    text = path.with_suffix(".txt")
    return text.read_text().strip() if text.is_file() else prompt


def _rgb(image: np.ndarray) -> np.ndarray:
    image = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)
    return (image // 257).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8)


class ImageSequence:
    """The images of one folder (sorted by name) or the frames of one video, framed to ``size`` (W, H)."""

    def __init__(self, path: Path, size: tuple[int, int], prompt: str, multiple: int = 8):
        self.path, self.size, self.multiple = path, size, multiple
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            self.captions = [_caption(p, prompt) for p in self.files]
            self.video = None
        else:
            self.files, self.video = [], self._read_video(path)
            self.captions = [_caption(path, prompt)] * len(self.video)
        if not len(self):
            raise UserError(path, "holds no images (png, jpg, webp, bmp)" if path.is_dir() else "holds no frames")

    def _read_video(self, path: Path) -> np.ndarray:
        """Every frame, framed, as (N, H, W, 3) uint8 in memory (W x H x 3 bytes a frame)."""
        import imageio.v2 as imageio

        try:
            reader = imageio.get_reader(str(path))
            frames = [self.frame(_rgb(np.asarray(f))) for f in reader]
            reader.close()
        except (OSError, ValueError, RuntimeError) as exc:
            raise UserError(path, f"unreadable video ({' '.join(str(exc).split())[:200]})") from None
        return np.stack(frames) if frames else np.zeros((0, self.size[1], self.size[0], 3), np.uint8)

    def frame(self, image: np.ndarray) -> np.ndarray:
        framing = Framing.cover((image.shape[1], image.shape[0]), self.size, self.multiple)
        return np.ascontiguousarray(framing.image(image))

    def __len__(self) -> int:
        return len(self.files) if self.video is None else len(self.video)

    def pixels(self, k: int) -> torch.Tensor:
        """(3, H, W) in [-1, 1]."""
        if self.video is not None:
            image = self.video[k]
        else:
            image = self.frame(_rgb(read_image(self.files[k], "training image")))
        return torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0


class SequenceDataset(torch.utils.data.Dataset):
    """Frames (``pairs`` False) or consecutive pairs of image sequences, as the passes datasets give them."""

    def __init__(self, sequences: list[ImageSequence], pairs: bool):
        self.sequences, self.pairs = sequences, pairs
        self.items = [(s, k) for s, seq in enumerate(sequences) for k in range(len(seq) - int(pairs))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        s, k = self.items[index]
        seq = self.sequences[s]
        if not self.pairs:
            return {"pixel_values": seq.pixels(k), "caption": seq.captions[k]}
        return {"pixel_values": seq.pixels(k + 1), "previous_pixel_values": seq.pixels(k),
                "caption": seq.captions[k + 1]}


def split_data(paths: list[str]) -> tuple[list[str], list[Path]]:
    """(passes folders, image folders and videos) of the config's ``data``."""
    folders, others = [], []
    for path in map(Path, paths):
        if (path / "meta.json").is_file():
            folders.append(str(path))
        elif path.is_dir() or (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES):
            others.append(path)
        else:
            raise UserError(path, "neither a passes folder, a folder of images nor a video file ("
                                  + ", ".join(VIDEO_SUFFIXES) + ")")
    return folders, others


def _dataset(config, pairs: bool, passes: list[str], channels: int, multiple: int):
    folders, others = split_data(config.data)
    parts = []
    if folders:
        kind = PairDataset if pairs else FrameDataset
        parts.append(kind(open_folders(folders, passes, config.target), passes, config.size, channels,
                          target=config.target, prompt=config.prompt, multiple=multiple))
    if others:
        if passes:
            raise UserError("data", f"{others[0]} has no {'+'.join(passes)} pass; pose conditions need passes folders")
        parts.append(SequenceDataset([ImageSequence(p, config.size, config.prompt, multiple) for p in others], pairs))
    if not sum(len(p) for p in parts):
        raise UserError("data", "no training items (a pair needs two frames of one folder or video)")
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)


def frame_dataset(config, multiple: int = 8):
    """Single frames of ``config.data`` (``pixel_values``, ``caption``)."""
    return _dataset(config, False, [], 0, multiple)


def pair_dataset(config, passes: list[str], channels: int, multiple: int = 8):
    """Consecutive pairs of ``config.data``; with ``passes``, frame k+1's stacked passes as
    ``conditioning_pixel_values`` (passes folders only)."""
    return _dataset(config, True, passes, channels, multiple)
