"""Multi-person casts: placing actors, validating a cast, loading the scene's ``actors:`` list."""

from __future__ import annotations

import numpy as np
import pytest

from motion.actors import Actor, check_cast, load_cast, place_actor
from motion.errors import UserError
from motion.generate import generate_motion


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
    assert bob.body == "smplx" and bob.motion.n_frames == 90 and bob.heading_deg == 0.0
    np.testing.assert_allclose(place_actor(bob).root_translation[0, :2], [-1.5, 0.0])


@pytest.mark.parametrize("entry, where", [
    ({"name": "a", "position": [0, 0]}, "actors[0].motion"),
    ({"name": "a", "motion": "missing.npz"}, "actors[0].motion"),
    ({"name": "a", "motion": {"generate": "fly away"}}, "actors[0].motion.generate"),
    ({"name": "a", "motion": {"generate": "walk", "seconds": "long"}}, "actors[0].motion.seconds"),
    ({"name": "a", "motion": {"text": "walk"}}, "actors[0].motion"),
    ({"name": "a", "motion": {"generate": "walk"}, "position": [0, 0, 0]}, "actors[0].position"),
    ({"name": "a", "motion": {"generate": "walk"}, "heading_deg": "north"}, "actors[0].heading_deg"),
    ({"name": "a", "motion": {"generate": "walk"}, "body": "robot"}, "actors[0].body"),
    ({"name": "", "motion": {"generate": "walk"}}, "actors[0].name"),
    ({"name": "a", "motion": {"generate": "walk"}, "colour": "red"}, "actors[0].colour"),
    ({"name": "a", "motion": {"generate": "walk"}, "avatar": "none.npz"}, "actors[0].avatar"),
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
