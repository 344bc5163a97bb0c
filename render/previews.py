"""Previews of a passes folder: one mp4 per pass, a labelled grid mp4 of all passes, and a contact
sheet PNG (a few frames x all passes, labelled).

Written with imageio's ffmpeg plugin (H.264, yuv420p) and Pillow for labels, both present wherever
imageio is (the project venv). A stock Blender has neither: :func:`write_previews` then writes
nothing and returns an empty list after one note; run ``avatarcine`` from the venv on the passes
folder to get them. Every pass is shown as 8-bit RGB: colour PNGs as stored, one-channel PNGs as
grey (16-bit scaled to 8), float depth as the clip-normalised depth encoding of ``render.depthmap``
(meta.json's near/far when it has them, else the clip's min/max), flow with the Middlebury wheel of
``render.flowviz`` scaled by the clip's largest flow, instance masks as grey levels
``255 * id / max id``. Frames stream one at a time (bounded memory).
"""

from __future__ import annotations

import math
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import numpy as np

from motion.errors import UserError
from motion.fileio import atomic_path, check_writable
from render.depthmap import DepthRange, encode_depth, meta_depth_range
from render.flowviz import flow_magnitude_max, flow_to_colour
from render.meta import META, frame_path, read_meta
from render.passio import pick_channels

PREVIEWS = "previews"
LABEL_HEIGHT = 14


def _kind(info: dict) -> str:
    """The pass kind from its entry (``kind`` extra, else guessed from ext/channels)."""
    if "kind" in info:
        return info["kind"]
    if info.get("ext") == "exr":
        return {1: "depth_float", 2: "flow"}.get(info.get("channels"), "image")
    return "image"


def _read(path: Path) -> np.ndarray | dict:
    """A float EXR's channels (dict), else the image (H, W, C) in RGB(A) order as stored."""
    if not path.is_file():
        raise UserError(path, "missing frame file (the passes folder is incomplete)")
    if path.suffix == ".exr":
        from render.exr import read_exr
        return read_exr(path)
    from render.images import read_image
    return read_image(path, "frame file")


def _grey(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, -1)


class _Decoder:
    """Turns one pass's frames into RGB uint8, with clip-wide scales computed up front."""

    def __init__(self, root: Path, meta: dict, name: str):
        self.root, self.meta, self.name = root, meta, name
        self.info = meta["passes"][name]
        self.kind = _kind(self.info)
        self.scale = None
        if self.kind == "depth_float":
            self.scale = meta_depth_range(meta, name)             # the clip's range, as the depth PNG has it
            if self.scale is None:
                r = DepthRange()
                for f in meta["frames"]:
                    r.update(self._planes(f["index"])[..., 0])
                self.scale = (r.near, r.far) if not r.empty else (0.0, 1.0)
        elif self.kind == "flow":
            self.scale = max(flow_magnitude_max(self._planes(f["index"])[..., :2]) for f in meta["frames"])
        elif self.kind == "mask":
            self.scale = max([a.get("instance_id", 1) for a in meta.get("actors", [])] + [1])

    def _path(self, index: int) -> Path:
        return frame_path(self.root, self.meta, self.name, index)

    def _load(self, index: int):
        return _read(self._path(index))

    def _planes(self, index: int) -> np.ndarray:
        """The EXR channels the entry's ``exr_channels`` names, in order (never guessed by sorting)."""
        return pick_channels(self._load(index), self.info.get("exr_channels"), self._path(index))

    def rgb(self, index: int) -> np.ndarray:
        if self.kind == "depth_float":
            return _grey(encode_depth(self._planes(index)[..., 0], *self.scale))
        if self.kind == "flow":
            return flow_to_colour(self._planes(index)[..., :2], self.scale)
        if self.info.get("ext") == "exr":                           # other float EXR: display-encode
            img = self._planes(index)[..., :3]
            img = np.concatenate([img] + [img[..., -1:]] * (3 - img.shape[-1]), -1)
            return (np.clip(img, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)
        data = self._load(index)
        if data.dtype == np.uint16:
            data = (data >> 8).astype(np.uint8)
        if self.kind == "mask":
            data = np.clip(data.astype(np.float64) * 255 / self.scale, 0, 255).astype(np.uint8)
        if data.ndim == 2:
            return _grey(data)
        return data[..., :3] if data.shape[-1] >= 3 else _grey(data[..., 0])


def _resize(img: np.ndarray, width: int) -> np.ndarray:
    """Nearest-neighbour resize to ``width`` (aspect kept), sampling pixel centres."""
    H, W = img.shape[:2]
    height = max(1, round(H * width / W))
    rows = ((np.arange(height) + 0.5) * H / height).astype(int)
    cols = ((np.arange(width) + 0.5) * W / width).astype(int)
    return img[rows][:, cols]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` with a black bar above it holding ``text`` in white."""
    from PIL import Image, ImageDraw

    bar = Image.new("RGB", (img.shape[1], LABEL_HEIGHT))
    ImageDraw.Draw(bar).text((3, 1), text, fill=(255, 255, 255))
    return np.concatenate([np.asarray(bar), img], 0)


def _even(img: np.ndarray) -> np.ndarray:
    """Pad to even width/height (yuv420p needs them)."""
    H, W = img.shape[:2]
    return np.pad(img, ((0, H % 2), (0, W % 2), (0, 0)))


def _grid(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / cols)
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    return out


def contact_sheet(root: str | os.PathLike, meta: dict, frames: list[int], tile_width: int = 256,
                  decoders: dict | None = None) -> np.ndarray:
    """Rows = ``frames`` (absolute indices), columns = passes; each tile labelled ``pass  #frame``."""
    decoders = decoders or {n: _Decoder(Path(root), meta, n) for n in meta["passes"]}
    rows = []
    for index in frames:
        rows.append(np.concatenate([_label(_resize(d.rgb(index), tile_width), f"{n}  #{index}")
                                    for n, d in decoders.items()], 1))
    return np.concatenate(rows, 0)


def preview_files(root: str | os.PathLike, meta: dict, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """What :func:`write_previews` writes: ``<pass>.mp4`` per pass, ``grid.mp4``, ``contact_sheet.png``."""
    out = Path(out_dir) if out_dir is not None else Path(root) / PREVIEWS
    return [out / f"{n}.mp4" for n in meta["passes"]] + [out / "grid.mp4", out / "contact_sheet.png"]


def previews_current(root: str | os.PathLike) -> bool:
    """Whether every preview in ``root/previews`` exists and is at least as new as ``root/meta.json``."""
    try:
        meta = read_meta(root)
        stamp = (Path(root) / META).stat().st_mtime_ns
        return all(p.is_file() and p.stat().st_mtime_ns >= stamp for p in preview_files(root, meta))
    except (UserError, OSError):
        return False


def write_previews(root: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, tile_width: int = 320,
                   contact_frames: int = 4, force: bool = False,
                   note: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> list[Path]:
    """Write ``<pass>.mp4`` per pass, ``grid.mp4`` and ``contact_sheet.png`` into ``out_dir``
    (default ``root/previews``); returns the paths written ([] when imageio is missing)."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        note("avatarcine: previews skipped (imageio is not installed in this Python)")
        return []
    from render.png import write_png

    root = Path(root)
    meta = read_meta(root)
    names = list(meta["passes"])
    if not names:
        raise UserError(root / "meta.json", "no passes to preview")
    targets = preview_files(root, meta, out_dir)
    for t in targets:
        check_writable(t, force)
    decoders = {n: _Decoder(root, meta, n) for n in names}
    fps = float(meta["fps"])
    cols = math.ceil(math.sqrt(len(names)))
    with ExitStack() as stack:
        writers = []
        for t in targets[:-1]:
            tmp = stack.enter_context(atomic_path(t, force=True))
            writers.append(stack.enter_context(imageio.get_writer(
                tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                macro_block_size=1, quality=8)))
        for f in meta["frames"]:
            rgbs = [d.rgb(f["index"]) for d in decoders.values()]
            for w, img in zip(writers, rgbs):
                w.append_data(_even(img))
            tiles = [_label(_resize(img, tile_width), n) for n, img in zip(names, rgbs)]
            writers[-1].append_data(_even(_grid(tiles, cols)))
    indices = [f["index"] for f in meta["frames"]]
    n = max(1, min(contact_frames, len(indices)))
    pick = sorted({indices[round(k * (len(indices) - 1) / max(n - 1, 1))] for k in range(n)})
    write_png(targets[-1], contact_sheet(root, meta, pick, tile_width=tile_width // 4 * 3, decoders=decoders),
              force=True)
    return targets
