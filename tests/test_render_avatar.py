"""Blender's evaluated mesh equals our numpy skinning, vertex by vertex; the .blend is editable."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from _render_util import tube_avatar, wave_motion  # noqa: E402
from render.avatar import add_actor, evaluated_vertices  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.mark.parametrize("correctives", [False, True])
def test_evaluated_mesh_equals_numpy_skinning(correctives):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    asset = tube_avatar(correctives=correctives)
    motion = wave_motion(asset, 5, walk=0.7)
    actor = add_actor("bob", asset, motion, np.arange(5), instance_id=1)
    reference = asset.skin(motion)
    for f in range(5):
        bpy.context.scene.frame_set(f)
        assert np.abs(evaluated_vertices(actor.mesh) - reference[f]).max() < 1e-4
    # the rig is real Blender data an artist can edit: bones, groups, keyed rotations, shape keys
    assert sorted(b.name for b in actor.armature.data.bones) == sorted(asset.joint_names)
    assert len(actor.mesh.vertex_groups) == len(asset.joint_names)
    assert actor.armature.animation_data.action is not None
    keys = actor.mesh.data.shape_keys
    assert (keys is not None and len(keys.key_blocks) == 1 + 9 * 23) == correctives
