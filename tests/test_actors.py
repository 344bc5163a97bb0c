"""Multi-person casts: placing actors, validating a cast, loading the scene's ``actors:`` list."""

from __future__ import annotations

import numpy as np
import pytest

from _render_util import tube_avatar
from motion.actors import Actor, check_cast, load_cast, perform, place_actor
from motion.errors import UserError
from motion.generate import generate_motion
from motion.io import read_motion
from motion.ops import heading_of


@pytest.fixture(scope="module")
def walk():
    return generate_motion("walk forward 4 steps", seed=1)


def _facing(m):
    """Facing (x, y) at frame 0 from the hip joints: (left hip - right hip) x up."""
    P = m.joint_positions()[0]
    lateral = P[m.joint("left_hip")] - P[m.joint("right_hip")]
    f = np.cross(lateral, [0.0, 0.0, 1.0])[:2]
    return f / np.linalg.norm(f)


@pytest.mark.parametrize("heading, direction", [(0, (0, -1)), (90, (1, 0)), (180, (0, 1)), (-90, (-1, 0))])
def test_place_actor_starts_at_position_facing_heading(walk, heading, direction):
    placed = place_actor(Actor("a", walk, position=(2.0, -1.0), heading_deg=heading))
    np.testing.assert_allclose(placed.root_translation[0, :2], [2.0, -1.0], atol=1e-9)
    assert placed.root_translation[0, 2] == pytest.approx(walk.root_translation[0, 2])
    np.testing.assert_allclose(_facing(placed), direction, atol=0.02)
    travel = placed.root_translation[-1, :2] - placed.root_translation[0, :2]
    assert travel @ np.array(direction) > 0.9 * np.linalg.norm(travel)  # walks where it faces
    feet = placed.joint_positions()[:, [placed.joint("left_foot"), placed.joint("right_foot")], 2]
    assert abs(feet.min()) < 1e-6  # still on the floor


def test_check_cast(walk):
    a = Actor("alice", walk, position=(0.0, 0.0))
    b = Actor("bob", walk, position=(3.0, 0.0))
    assert check_cast([a, b]) == []
    with pytest.raises(UserError, match=r"actors\[1\]\.name.*'alice'"):
        check_cast([a, Actor("alice", walk, position=(5.0, 0.0))])
    with pytest.raises(UserError, match=r"actors\[1\]\.position.*0\.30 m"):
        check_cast([a, Actor("carol", walk, position=(0.3, 0.0))])
    with pytest.raises(UserError, match=r"actors\[0\]\.body"):
        check_cast([Actor("dave", walk, body="robot")])
    # start 3 m apart, walking towards each other: they meet on the way -> a warning, not an error
    towards = Actor("erin", walk, position=(0.0, -3.2), heading_deg=180)
    with pytest.warns(UserWarning, match="'alice' and 'erin' come"):
        notes = check_cast([a, towards])
    assert len(notes) == 1


def test_load_cast_from_scene_entries(tmp_path, walk):
    (tmp_path / "clips").mkdir()
    walk.save(tmp_path / "clips" / "walk.npz")
    spec = [
        {"name": "alice", "body": "anny", "motion": "clips/walk.npz", "position": [1, 2], "heading_deg": 90},
        {"name": "bob", "body": "smplx", "motion": {"generate": "wave with the left hand", "seconds": 3, "seed": 2},
         "position": [-1.5, 0.0]},
    ]
    alice, bob = load_cast(spec, tmp_path)
    assert alice.body == "anny" and alice.position == (1.0, 2.0) and alice.heading_deg == 90.0
    np.testing.assert_allclose(alice.motion.rotations, walk.rotations, atol=1e-6)  # float32 in the file
    assert bob.body == "smplx" and bob.motion.n_frames == 90 and bob.heading_deg is None  # omitted: as recorded
    placed = place_actor(bob)
    np.testing.assert_allclose(placed.root_translation[0, :2], [-1.5, 0.0])
    np.testing.assert_allclose(heading_of(placed)[0], heading_of(bob.motion)[0], atol=1e-9)


@pytest.mark.parametrize("entry, where", [
    ({"name": "a", "position": [0, 0]}, "actors[0].motion"),
    ({"name": "a", "motion": "missing.npz"}, "actors[0].motion"),
    ({"name": "a", "motion": {"generate": "fly away"}}, "actors[0].motion.generate"),
    ({"name": "a", "motion": {"generate": "walk", "seconds": "long"}}, "actors[0].motion.seconds"),
    ({"name": "a", "motion": {"text": "walk"}}, "actors[0].motion"),
    ({"name": "a", "motion": {"generate": "walk"}, "position": [0]}, "actors[0].position"),
    ({"name": "a", "motion": {"generate": "walk"}, "heading_deg": "north"}, "actors[0].heading_deg"),
    ({"name": "a", "motion": {"generate": "walk"}, "body": "robot"}, "actors[0].body"),
    ({"name": "", "motion": {"generate": "walk"}}, "actors[0].name"),
    ({"name": "a", "motion": {"generate": "walk"}, "colour": "red"}, "actors[0].colour"),
    ({"name": "a", "motion": {"generate": "walk"}, "avatar": "none.npz"}, "actors[0].avatar"),
    ({"name": "a", "motion": {"generate": "walk"}, "avatar": "a.npz", "body": "anny"}, "actors[0]"),
    ({"name": "a", "motion": {"generate": "walk"}, "body": {"type": "smplx", "colour": 1}}, "actors[0].body.colour"),
    ({"name": "a", "motion": {"generate": "walk"}, "body": {"type": "robot"}}, "actors[0].body"),
    ({"name": "a", "motion": {"generate": "walk", "seed": -2}}, "actors[0].motion.seed"),
    ("alice", "actors[0]"),
])
def test_load_cast_names_the_bad_field(tmp_path, entry, where):
    with pytest.raises(UserError) as e:
        load_cast([entry], tmp_path)
    assert e.value.where == where


def test_load_cast_names_the_entry_index(tmp_path):
    good = {"name": "a", "motion": {"generate": "idle"}, "position": [0, 0]}
    with pytest.raises(UserError) as e:
        load_cast([good, {"name": "b", "motion": {"generate": "idle"}, "position": "here"}], tmp_path)
    assert e.value.where == "actors[1].position"
    with pytest.raises(UserError, match="actors"):
        load_cast({"name": "a"}, tmp_path)


def test_scene_body_mapping_and_recorded_start(tmp_path):
    spec = [{"name": "a", "body": {"type": "smplx", "model": "models", "gender": "female", "shape": {"beta0": 1.0}},
             "motion": {"generate": "jump", "seed": 1}, "position": None, "heading_deg": None}]
    (actor,) = load_cast(spec, tmp_path)
    assert actor.body == "smplx"
    assert actor.body_options == {"model_path": tmp_path / "models", "gender": "female", "shape": {"beta0": 1.0}}
    np.testing.assert_allclose(place_actor(actor).root_translation, actor.motion.root_translation)


def test_perform_on_a_baked_avatar_file(tmp_path, walk):
    asset = tube_avatar()  # an SMPL-skeleton avatar: the generated motion needs no retargeting
    asset.save(tmp_path / "tube.npz")
    spec = [{"name": "a", "avatar": "tube.npz", "motion": {"generate": "walk forward 4 steps", "seed": 1},
             "position": [1.0, 1.0], "heading_deg": 45}]
    (actor,) = load_cast(spec, tmp_path)
    assert actor.asset.joint_names == asset.joint_names
    performed = perform(actor)
    np.testing.assert_allclose(performed.rotations[:, 1:], walk.rotations[:, 1:], atol=1e-9)
    np.testing.assert_allclose(performed.root_translation[0, :2], [1.0, 1.0], atol=1e-9)
    np.testing.assert_allclose(_facing(performed), [np.sqrt(0.5), -np.sqrt(0.5)], atol=0.02)  # (sin h, -cos h)


def test_perform_retargets_onto_the_avatar_then_places(amass_sample):
    asset = tube_avatar()
    source = read_motion(amass_sample)
    assert source.skeleton != asset.skeleton
    performed = perform(Actor("mocap", source, avatar=asset, position=(3.0, -2.0), heading_deg=-90))
    assert performed.joint_names == asset.joint_names and performed.n_frames == source.n_frames
    np.testing.assert_allclose(performed.root_translation[0, :2], [3.0, -2.0], atol=1e-9)
    np.testing.assert_allclose(_facing(performed), [-1.0, 0.0], atol=0.05)
