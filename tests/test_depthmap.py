"""Clip-normalised depth PNGs, from float EXRs that Blender itself wrote."""

from __future__ import annotations

import numpy as np
import pytest

from motion.errors import UserError
from render.depthmap import DepthRange, decode_depth, depth_range, encode_depth, write_depth_pngs


def test_encoding_values():
    z = np.array([[2.0, 3.0, 4.0, 1e10, np.inf, 0.0]])
    v = encode_depth(z, near=2.0, far=4.0)
    assert v.tolist() == [[255, 128, 1, 0, 0, 0]]                 # near bright, far 1, background 0
    v16 = encode_depth(z, 2.0, 4.0, bits=16)
    assert v16.dtype == np.uint16 and v16[0, 0] == 65535 and v16[0, 2] == 1
    back = decode_depth(v16, 2.0, 4.0, bits=16)
    assert np.allclose(back[0, :3], z[0, :3], atol=2 / 65534) and np.isnan(back[0, 3:]).all()


def test_range_is_over_the_whole_clip():
    a = np.full((4, 4), 1e10)
    a[1:3, 1:3] = 3.0
    b = np.full((4, 4), 1e10)
    b[0, 0], b[3, 3] = 1.5, 5.0
    assert depth_range([a, b]) == (1.5, 5.0)
    assert DepthRange().update(a).near == 3.0
    # the same surface keeps its grey level across frames whatever else is in view
    assert encode_depth(a, 1.5, 5.0)[1, 1] == round(1 + 254 * (5.0 - 3.0) / 3.5)
    with pytest.raises(UserError):
        depth_range([np.full((2, 2), np.inf)])


def test_pngs_from_blender_exrs(tmp_path):
    bpy = pytest.importorskip("bpy")
    iio = pytest.importorskip("imageio.v3")
    rng = np.random.default_rng(2)
    W, H = 9, 6
    scene = bpy.data.scenes.new("depthmap_test")
    settings = scene.render.image_settings
    settings.file_format, settings.color_depth, settings.exr_codec = "OPEN_EXR", "32", "ZIP"
    depths, exrs = [], []
    for k in range(3):
        z = rng.uniform(2.0 + k, 3.0 + k, (H, W)).astype(np.float32)
        z[0, :] = 1e10                                             # background row at the top
        depths.append(z)
        img = bpy.data.images.new(f"depth{k}", W, H, alpha=True, float_buffer=True)
        rgba = np.repeat(z[::-1, :, None], 4, -1)                  # Blender's pixel rows go bottom-up
        img.pixels.foreach_set(rgba.ravel())
        exrs.append(tmp_path / f"{k:06d}.exr")
        img.save_render(str(exrs[-1]), scene=scene)
        bpy.data.images.remove(img)
    bpy.data.scenes.remove(scene)
    pngs = [tmp_path / "depth" / f"{k:06d}.png" for k in range(3)]
    extras = write_depth_pngs(exrs, pngs, bits=16, channel="R")
    fg = np.concatenate([d[1:] for d in depths])
    assert extras == {"near": float(fg.min()), "far": float(fg.max()), "bits": 16}
    for z, png in zip(depths, pngs):
        v = iio.imread(png)
        assert v.dtype == np.uint16 and (v[0] == 0).all() and (v[1:] > 0).all()
        assert np.allclose(decode_depth(v, extras["near"], extras["far"], 16)[1:], z[1:], atol=1e-4)
    with pytest.raises(UserError):                                # no silent overwrite
        write_depth_pngs(exrs, pngs)
    with pytest.raises(UserError):
        write_depth_pngs(exrs, pngs, channel="Z", force=True)


def test_pick_channels_keeps_the_named_order_and_never_guesses():
    from render.passio import pick_channels

    r, g = np.full((2, 3), 1.0, np.float32), np.full((2, 3), 2.0, np.float32)
    picked = pick_channels({"View Layer.R": r, "View Layer.G": g}, ["R", "G"], "f.exr")  # short names match
    assert picked.shape == (2, 3, 2) and (picked[..., 0] == 1.0).all() and (picked[..., 1] == 2.0).all()
    assert (pick_channels({"Y": g}, None, "f.exr")[..., 0] == 2.0).all()            # one channel: no name needed
    with pytest.raises(UserError, match="lacks exr_channels"):
        pick_channels({"R": r, "G": g}, None, "f.exr")
    with pytest.raises(UserError, match="no channel 'B'"):
        pick_channels({"R": r, "G": g}, ["B"], "f.exr")
