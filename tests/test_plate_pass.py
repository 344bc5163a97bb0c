"""The ``plate`` pass (``--background plate``): the rgb render with the avatars hidden from the camera;
outside the body it is the rgb render, inside it the ground behind the body, shadows kept."""

import os

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("bpy")

from _render_util import tube_avatar, write_actor  # noqa: E402
from render.api import render_scene  # noqa: E402
from render.meta import read_meta  # noqa: E402

pytestmark = pytest.mark.blender


def _read(path):
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return im[..., ::-1] if im.ndim == 3 else im


def test_plate_is_the_rgb_render_without_the_avatar_in_view(tmp_path):
    asset = tube_avatar(radius=0.12)
    scene = {"fps": 30, "resolution": [32, 32], "actors": [write_actor(tmp_path, "a", asset, asset.rest_motion(1))],
             "camera": {"type": "static", "elevation_deg": 5}, "passes": ["plate", "rgb", "mask"],
             "engine": {"rgb_samples": 4}}
    out = render_scene(scene, tmp_path / "out", base_dir=tmp_path, previews=False)
    assert read_meta(out)["passes"]["plate"]["kind"] == "image"
    plate = _read(out / "plate" / "000000.png").astype(int)
    rgb = _read(out / "rgb" / "000000.png").astype(int)
    mask = _read(out / "mask" / "000000.png") > 0
    kernel = np.ones((3, 3), np.uint8)
    near = cv2.dilate(mask.astype(np.uint8), kernel) > 0          # the pixel filter blends one pixel of edge
    inner = cv2.erode(mask.astype(np.uint8), kernel) > 0
    assert inner.sum() > 10 and (~near).sum() > 100
    # Away from the body both renders trace the same paths (same seed; the hidden body still casts its
    # shadow and bounces light); an OIDN denoiser, where Blender has one, may move a level or two.
    assert np.abs(plate[~near] - rgb[~near]).max() <= 2
    # On the body the plate shows what is behind it: sky and ground, not the body's colours
    assert np.abs(plate[inner] - rgb[inner]).mean() > 20            # control: the body is gone there
    behind = plate[inner].mean(axis=0)
    background = rgb[~near].mean(axis=0)
    assert np.abs(behind - background).max() < 40
