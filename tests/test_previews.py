"""Previews of a synthetic passes folder: per-pass mp4s, grid mp4, labelled contact sheet."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from motion.errors import UserError
from render import meta as M
from render.exr import write_exr
from render.openpose import draw_pose
from render.png import write_png
from render.previews import write_previews

iio = pytest.importorskip("imageio.v3")

W, H, N = 63, 47, 3          # odd size: videos are padded to even


@pytest.fixture
def passes_folder(tmp_path):
    frames = []
    for k in range(N):
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[:, :, k] = 200                                               # flat: survives H.264
        write_png(tmp_path / "rgb" / f"{k:06d}.png", rgb)
        z = np.full((H, W), 1e10, np.float32)
        z[10:30, 10 + k:40 + k] = 2.0 + k                                # body moves away
        write_exr(tmp_path / "depth_exr" / f"{k:06d}.exr", {"Y": z, "A": np.ones_like(z)})  # named in meta
        write_exr(tmp_path / "flow" / f"{k:06d}.exr",                  # as render/api.py: R = dx, G = dy
                  {"R": np.full((H, W), 2.0, np.float32), "G": np.zeros((H, W), np.float32)})
        mask = (z < 1e9).astype(np.uint8)
        write_png(tmp_path / "mask" / f"{k:06d}.png", mask)
        body = np.column_stack([np.linspace(10, 50, 18), np.linspace(5, 40, 18), np.ones(18)])
        write_png(tmp_path / "openpose" / f"{k:06d}.png", draw_pose(H, W, [dict(body=body)]))
        frames.append(M.frame_entry(k, k / 24, np.eye(3), np.eye(4), np.eye(4), 0, {}))
    passes = {"rgb": M.standard_pass("image", "rgb"),
              "depth_exr": M.standard_pass("depth_float", "depth_exr", exr_channels=["Y"]),
              "flow": M.standard_pass("flow", exr_channels=["R", "G"]), "mask": M.standard_pass("mask"),
              "openpose": M.standard_pass("pose", "openpose")}
    meta = M.build_meta(fps=24, resolution=(W, H), passes=passes, frames=frames, joint_names={},
                        actors=[{"name": "a", "body": "b", "skeleton": "smpl", "instance_id": 1}])
    M.write_meta(tmp_path, meta)
    return tmp_path


def test_previews(passes_folder):
    paths = write_previews(passes_folder)
    out = passes_folder / "previews"
    assert sorted(p.name for p in paths) == sorted(
        ["rgb.mp4", "depth_exr.mp4", "flow.mp4", "mask.mp4", "openpose.mp4", "grid.mp4", "contact_sheet.png"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]      # no temp files left
    video = _video(out / "rgb.mp4")
    assert video.shape == (N, H + 1, W + 1, 3)
    for k in range(N):
        expected = np.zeros(3)
        expected[k] = 200
        assert np.abs(video[k, :H, :W].mean((0, 1)) - expected).max() < 8
    depth = _video(out / "depth_exr.mp4")
    near, far = depth[0, 20, 25].mean(), depth[2, 20, 25].mean()
    assert near > 240 and far < 15 and depth[0, 2, 2].mean() < 5       # clip-normalised: near bright
    flow = _video(out / "flow.mp4")
    r, g, b = flow[0, 20, 20].astype(int)
    assert r > 200 and g < 60 and b < 60                                # rightward flow: red (dx, dy not swapped)
    grid = _video(out / "grid.mp4")
    assert grid.shape[0] == N and grid.shape[2] == 3 * 320               # 5 passes -> 3 columns
    sheet = iio.imread(out / "contact_sheet.png")
    tile_w = 240
    tile_h = round(H * tile_w / W) + 14
    assert sheet.shape == (3 * tile_h, 5 * tile_w, 3)                    # frames 0, 1, 2 x 5 passes
    assert (sheet[:14, :tile_w] > 200).any()                             # a label in the bar
    with pytest.raises(UserError):
        write_previews(passes_folder)                                    # refuses to overwrite
    assert write_previews(passes_folder, force=True)


def _video(path):
    import imageio.v2 as imageio

    with imageio.get_reader(path, format="FFMPEG") as reader:
        return np.stack([frame for frame in reader.iter_data()])


def test_missing_frame_and_missing_imageio(passes_folder, monkeypatch):
    (passes_folder / "mask" / "000001.png").unlink()
    with pytest.raises(UserError, match="000001.png"):
        write_previews(passes_folder, passes_folder / "p")
    notes = []
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    assert write_previews(passes_folder, note=notes.append) == []
    assert len(notes) == 1 and "skipped" in notes[0]
