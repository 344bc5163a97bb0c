"""The one pass table: every consumer reads it, so a pass declared there is known everywhere."""

from __future__ import annotations

import pytest

from motion.errors import UserError
from render import pass_table
from render.passes import ENTRIES, encodings


def test_every_output_has_a_meta_entry_and_nothing_else_does():
    assert set(ENTRIES) == {o.name for o in pass_table.outputs()}
    enc = encodings(list(pass_table.names()), {"torso": [1, 2, 3]}, {"a": 1}, (1.0, 4.0))
    assert list(enc) == [o.name for o in pass_table.outputs()]
    for o in pass_table.outputs():
        assert enc[o.name]["kind"] == o.kind, o.name
    assert list(encodings(["mask"], {}, {"a": 1}, (1.0, 4.0))) == ["mask", "instance"]


def test_scenes_accept_the_table_and_default_to_its_default_passes():
    from render.scene_config import validate_scene

    scene = {"actors": [{"name": "a", "motion": "m.npz"}]}
    assert tuple(validate_scene(scene, "s")["passes"]) == pass_table.default_passes()
    assert validate_scene({**scene, "passes": list(pass_table.names())}, "s")["passes"] == list(pass_table.names())
    with pytest.raises(UserError, match="unknown pass.*known: mesh, normal, depth"):
        validate_scene({**scene, "passes": ["mesh", "sketch"]}, "s")


def test_diffusion_reads_passes_through_the_table():
    from diffusion.io.conditioning import LABEL_PASSES
    from diffusion.io.passes import PASS_ALIASES
    from diffusion.loaders.controlnet import resolve_controlnet

    assert PASS_ALIASES["openpose"][0] == "skeleton" and "pose" in PASS_ALIASES["openpose"]
    assert PASS_ALIASES["depth"] == ("depth", "depth_png")
    assert set(LABEL_PASSES) == {"semantic", "instance"}
    with pytest.raises(UserError, match="no stock ControlNet reads 'semantic'"):
        resolve_controlnet("semantic", "some/base")
