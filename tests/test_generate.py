"""Procedural text-to-motion: parsing, conventions, and behaviour checked on the skeleton's joints."""

from __future__ import annotations

import numpy as np
import pytest

from motion.cli import main
from motion.contact import foot_contacts, skating, skating_of
from motion.errors import UserError
from motion.generate import generate_motion
from motion.generate.parse import parse
from motion.motion import Motion
from motion.reference_skeleton import reference_offsets
from motion.rotations import Y_UP_TO_Z_UP, axis_angle_to_matrix

FEET = ["left_foot", "right_foot", "left_ankle", "right_ankle"]


@pytest.fixture(scope="module")
def clips():
    texts = {
        "walk": "walk forward for 6 seconds",
        "run": "run for 4 seconds",
        "left": "turn left 90 degrees",
        "right": "turn right 90 degrees",
        "jump": "jump",
        "squat": "squat",
        "wave_left": "wave with the left hand",
        "wave": "wave",
        "all": "walk forward 4 steps, turn left, wave, run, jump forward, squat, dance, then punch",
    }
    return {k: generate_motion(t, seed=3) for k, t in texts.items()}


def _joint(m: Motion, name: str) -> np.ndarray:
    return m.joint_positions()[:, m.joint(name)]


def _facing(m: Motion) -> np.ndarray:
    """Facing direction (T, 2) from the hip joints alone: (left hip - right hip) x up."""
    lateral = _joint(m, "left_hip") - _joint(m, "right_hip")
    f = np.cross(lateral, [0.0, 0.0, 1.0])[:, :2]
    return f / np.linalg.norm(f, axis=-1, keepdims=True)


def _heading_deg(m: Motion) -> np.ndarray:
    f = _facing(m)
    return np.rad2deg(np.unwrap(np.arctan2(f[:, 0], -f[:, 1])))


# --- text ------------------------------------------------------------------------------------------

def test_parse_natural_variants():
    reqs = parse("A person walks forward 3 steps and turns right 90 degrees. Then he waves with the left "
                 "hand for 2 seconds, punches twice, jogging, then idle")
    assert [r.kind for r in reqs] == ["walk", "turn", "wave", "boxing", "run", "idle"]
    assert reqs[0].quantities == {"steps": 3.0} and reqs[0].direction == "forward"
    assert reqs[1].direction == "right" and reqs[1].quantities == {"degrees": 90.0}
    assert reqs[2].direction == "left" and reqs[2].quantities == {"seconds": 2.0}
    assert reqs[3].quantities == {"times": 2.0} and reqs[4].style == "jog"
    assert [r.kind for r in parse("jump up and down, stand still; wave hello! Then spin around")] == \
        ["jump", "idle", "wave", "turn"]


@pytest.mark.parametrize("text, word", [("fly to the moon", "fly"), ("walk forwrd", "forwrd"),
                                        ("wave 90 degrees", "degrees"), ("walk left", "left"),
                                        ("walk and", None), ("", None)])
def test_unmappable_text_is_a_user_error(text, word):
    if text == "walk and":  # a trailing separator is fine
        assert [r.kind for r in parse(text)] == ["walk"]
        return
    with pytest.raises(UserError) as e:
        generate_motion(text)
    assert e.value.where == "text"
    assert "walk" in e.value.problem or word in e.value.problem
    if word:
        assert repr(word) in e.value.problem


def test_cli_generate(tmp_path, capsys):
    out = tmp_path / "x.npz"
    args = ["motion", "generate", "walk forward, turn left, then wave", "--seconds", "8", "--fps", "30",
            "--seed", "1", "-o", str(out)]
    assert main(args) == 0
    m = Motion.load(out)
    assert m.n_frames == 240 and m.skeleton == "smpl"
    assert main(args) == 2  # no overwrite without --force
    assert main(["motion", "generate", "moonwalk", "-o", str(tmp_path / "y.npz")]) == 2
    assert "text: cannot map 'moonwalk'" in capsys.readouterr().err
    assert main(["motion", "generate", "walk", "--seed", "-1", "-o", str(tmp_path / "y.npz")]) == 2
    assert main(["motion", "generate", "walk", "--seconds", "0", "-o", str(tmp_path / "y.npz")]) == 2
    assert not (tmp_path / "y.npz").exists()


# --- conventions -----------------------------------------------------------------------------------

def test_smpl_output_in_the_amass_convention(clips):
    m = clips["all"]
    assert m.skeleton == "smpl" and m.n_joints == 24
    np.testing.assert_allclose(m.rest_offsets, reference_offsets("smpl"))
    start = clips["wave"].rotations[0, 0]
    assert np.degrees(np.arccos((np.trace(axis_angle_to_matrix(start) @ Y_UP_TO_Z_UP.T) - 1) / 2)) < 2.0
    feet = m.joint_positions()[:, [m.joint(n) for n in FEET], 2]
    assert abs(feet[0].min()) < 1e-6  # standing: lowest foot joint on the floor
    assert feet.min() > -1e-6  # never below it


def test_deterministic_per_seed():
    a = generate_motion("walk forward, turn left, then wave", seed=5)
    b = generate_motion("walk forward, turn left, then wave", seed=5)
    c = generate_motion("walk forward, turn left, then wave", seed=6)
    assert np.array_equal(a.rotations, b.rotations) and np.array_equal(a.root_translation, b.root_translation)
    assert a.n_frames != c.n_frames or not np.allclose(a.rotations, c.rotations, atol=1e-3)
    for m in (a, c):
        assert skating(m)["sliding_fraction"] < 0.02


def test_seconds_fixes_the_length_and_stretches_open_primitives():
    natural = generate_motion("walk forward, then wave", seed=2)
    longer = generate_motion("walk forward, then wave", seconds=natural.duration + 4, seed=2)
    shorter = generate_motion("walk forward, then wave", seconds=3.0, seed=2, fps=24)
    assert longer.n_frames == round((natural.duration + 4) * 30) and shorter.n_frames == 72
    walked = [np.linalg.norm(m.root_translation[-1, :2] - m.root_translation[0, :2]) for m in (natural, longer)]
    assert walked[1] > walked[0] + 1.0  # the walk got longer, not only the idle
    two_metres = generate_motion("walk 2 meters", seed=2)
    assert np.linalg.norm(two_metres.root_translation[-1, :2] - two_metres.root_translation[0, :2]) == \
        pytest.approx(2.0, abs=0.05)
    fixed = generate_motion("walk forward 3 steps, then wave 2 times", seconds=20, seed=2)
    assert fixed.n_frames == 600  # all lengths fixed by the text: padded by standing
    assert np.linalg.norm(fixed.root_translation[-1, :2] - fixed.root_translation[-60, :2]) < 0.05


def test_frame_rate_samples_the_same_motion():
    a = generate_motion("walk forward, turn right, then jump", fps=30, seed=4)
    b = generate_motion("walk forward, turn right, then jump", fps=60, seed=4)
    assert abs(b.n_frames - 2 * a.n_frames) <= 1  # rounding of the length to whole frames
    n = min(a.n_frames, (b.n_frames + 1) // 2)
    np.testing.assert_allclose(a.joint_positions()[:n], b.joint_positions()[::2][:n], atol=0.03)


# --- behaviour, measured on joint positions ---------------------------------------------------------

@pytest.mark.parametrize("name, lo, hi", [("walk", 1.0, 1.6), ("run", 2.0, 4.0)])
def test_locomotion_moves_along_the_facing_at_a_plausible_speed(clips, name, lo, hi):
    m = clips[name]
    a, b = int(1.2 * m.fps), int((m.duration - 1.6) * m.fps)  # steady part, away from start and stop
    travel = m.root_translation[b, :2] - m.root_translation[a, :2]
    speed = np.linalg.norm(travel) / ((b - a) / m.fps)
    assert lo <= speed <= hi
    facing = _facing(m)[a:b].mean(axis=0)
    cos = travel @ facing / (np.linalg.norm(travel) * np.linalg.norm(facing))
    assert cos > np.cos(np.deg2rad(8))


@pytest.mark.parametrize("text, degrees", [("turn left 90 degrees", 90), ("turn right 90 degrees", -90),
                                           ("turn around", 180), ("turn right 45 degrees", -45)])
def test_turn_changes_heading_counter_clockwise_for_left(text, degrees):
    m = generate_motion(text, seed=1)
    heading = _heading_deg(m)
    assert heading[-1] - heading[0] == pytest.approx(degrees, abs=3.0)
    # a left turn seen from above: the facing vector rotates counter-clockwise (positive z cross)
    f = _facing(m)
    assert np.sign(np.cross(f[0], f[-1]) if abs(degrees) < 180 else 1) == np.sign(degrees)
    assert np.linalg.norm(m.root_translation[-1, :2] - m.root_translation[0, :2]) < 0.1  # on the spot


def test_jump_lifts_both_feet(clips):
    m = clips["jump"]
    feet = m.joint_positions()[:, [m.joint(n) for n in FEET], 2]
    airborne = feet.min(axis=1) > 0.10
    assert airborne.sum() >= 5
    assert m.root_translation[:, 2].max() > m.root_translation[0, 2] + 0.2


def test_squat_lowers_the_pelvis_with_feet_planted(clips):
    m = clips["squat"]
    z = m.root_translation[:, 2]
    assert z.min() < z[0] - 0.3
    assert skating(m)["mean_slide_cm_s"] < 0.5


@pytest.mark.parametrize("clip, hand, other", [("wave_left", "left", "right"), ("wave", "right", "left")])
def test_wave_raises_the_named_hand_above_the_shoulder(clips, clip, hand, other):
    m = clips[clip]
    raised = _joint(m, f"{hand}_wrist")[:, 2] > _joint(m, f"{hand}_shoulder")[:, 2] + 0.1
    assert raised.sum() / m.fps > 1.0
    assert np.all(_joint(m, f"{other}_wrist")[:, 2] < _joint(m, f"{other}_shoulder")[:, 2])
    # the hand waves: the wrist swings from side to side while raised
    lateral = _joint(m, f"{hand}_wrist")[raised, 0]
    assert lateral.max() - lateral.min() > 0.1


def test_joint_rotations_stay_in_anatomical_ranges(clips):
    m = clips["all"]
    P = m.joint_positions()
    for side in ("left", "right"):
        knee = m.rotations[:, m.joint(f"{side}_knee")]
        assert np.all(np.abs(knee[:, 1:]) < 1e-6)  # a hinge
        assert knee[:, 0].min() > np.deg2rad(-2) and knee[:, 0].max() < np.deg2rad(150)
        # independent of the rotations: wherever the knee is bent, thigh x shin points to the body's
        # left, i.e. the knee bends forwards
        hip, kn, ankle = (P[:, m.joint(f"{side}_{j}")] for j in ("hip", "knee", "ankle"))
        thigh, shin = kn - hip, ankle - kn
        lateral = P[:, m.joint("left_hip")] - P[:, m.joint("right_hip")]
        bend = np.arccos(np.sum(thigh * shin, -1) / np.linalg.norm(thigh, axis=-1) / np.linalg.norm(shin, axis=-1))
        bent = bend > np.deg2rad(10)
        assert bent.mean() > 0.2
        assert np.all(np.sum(np.cross(thigh, shin) * lateral, -1)[bent] > 0)
        elbow = m.rotations[:, m.joint(f"{side}_elbow")]
        sign = -1 if side == "left" else 1  # SMPL elbow flexion: -y on the left arm, +y on the right
        assert np.all(sign * elbow[:, 1] > -1e-6) and np.abs(elbow[:, 1]).max() < np.deg2rad(150)
        for joint, limit in (("hip", 120), ("ankle", 60), ("shoulder", 150)):
            angle = np.degrees(np.linalg.norm(m.rotations[:, m.joint(f"{side}_{joint}")], axis=-1))
            assert angle.max() < limit, (joint, angle.max())
    for joint in ("spine1", "spine2", "spine3", "neck", "head"):
        assert np.degrees(np.linalg.norm(m.rotations[:, m.joint(joint)], axis=-1)).max() < 35


# --- foot skating ----------------------------------------------------------------------------------

def test_skating_metric_on_a_hand_made_foot():
    """A foot sliding 10 cm/s on the floor, then lifted and moved fast, then planted."""
    fps = 50.0
    P = np.zeros((150, 2, 3))  # joints: ankle, ball of the foot
    P[:, 0, 2] = 0.06
    P[:, 1, 1] = 0.13
    P[:, :, 0] = np.concatenate([np.arange(50) * 0.1 / fps, 0.1 + np.arange(50) * 1.0 / fps, np.full(50, 1.1)])[:, None]
    P[50:100, :, 2] += 0.2  # the swing
    contact = foot_contacts(P, fps, [(0, 1)])[:, 0]
    assert contact[:50].all() and not contact[50:100].any() and contact[100:].all()
    assert not foot_contacts(P, fps, [(0, 1)], max_speed=0.05)[:49, 0].any()  # labelling: sliding is no contact
    s = skating_of(P, fps, [(0, 1)])
    # 49 pairs sliding at 10 cm/s, 49 still pairs; the pairs across lift-off and landing are not contacts
    assert s["contact_fraction"] == pytest.approx(98 / 149)
    assert s["mean_slide_cm_s"] == pytest.approx(5.0)
    assert s["sliding_fraction"] == pytest.approx(0.5)
    assert s["weighted_skate_cm_s"] == pytest.approx(5.0)


@pytest.mark.parametrize("name", ["walk", "run"])
def test_walk_and_run_do_not_skate_but_a_dragged_clip_does(clips, name):
    m = clips[name]
    s = skating(m)
    # planted feet are held exactly by IK: what is left is float round-off (bound: 0.5 cm/s, 1%)
    assert s["contact_fraction"] > (0.5 if name == "walk" else 0.25)
    assert s["mean_slide_cm_s"] < 0.5 and s["sliding_fraction"] < 0.01
    # the classic artefact: the root moves 30% faster than the legs step -> feet slide
    root = m.root_translation.copy()
    root[:, :2] = root[0, :2] + 1.3 * (root[:, :2] - root[0, :2])
    dragged = skating(m.replace(root_translation=root))
    assert dragged["mean_slide_cm_s"] > 20 and dragged["sliding_fraction"] > 0.5
