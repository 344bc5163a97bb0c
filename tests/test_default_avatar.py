"""The shipped default avatar: the command that rebuilds it gives the shipped asset, the default body
loads it without torch, and any other shape still bakes Anny."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from motion.asset import AvatarAsset
from motion.bodies.default_avatar import DEFAULT, SHIPPED


def test_rebuilding_gives_the_shipped_asset(tmp_path):
    from motion.cli import main

    out = tmp_path / "default.npz"
    assert main(["avatar", "bake", "--rebuild-default", "-o", str(out)]) == 0
    rebuilt, shipped = np.load(out), np.load(SHIPPED)
    assert rebuilt.files == shipped.files
    for key in shipped.files:
        a, b = rebuilt[key], shipped[key]
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=key)  # Anny's rest mesh: float64 maths
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)
    assert SHIPPED.stat().st_size < 2_000_000


def test_default_body_is_the_shipped_clothed_asset_without_torch():
    code = ("import sys; from motion.bodies import bake_avatar; a = bake_avatar('anny'); "
            "print(a.body, len(a.rest_vertices), 'torch' in sys.modules, 'anny' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["anny", "13718", "False", "False"]
    asset = AvatarAsset.load(SHIPPED)
    torso = asset.part_names.index("torso")
    # the top's colour is painted where the torso's texels are: sample the texture at torso UVs
    faces = np.flatnonzero(asset.vertex_parts[asset.faces[:, 0]] == torso)
    uv = asset.uvs[faces].mean(axis=1)
    size = asset.texture.shape[0]
    texels = asset.texture[((1 - uv[:, 1]) * size).astype(int).clip(0, size - 1), (uv[:, 0] * size).astype(int).clip(0, size - 1)]
    assert np.median(np.abs(texels.astype(int) - DEFAULT.top_colour), axis=0).max() < 40


def test_other_shapes_still_bake_anny():
    from motion.bodies import bake_avatar

    other = bake_avatar("anny", shape={"height": 0.7})
    shipped = AvatarAsset.load(SHIPPED)
    assert not np.allclose(other.rest_vertices, shipped.rest_vertices)
    assert not np.array_equal(other.texture, shipped.texture)  # no outfit painted
