"""Procedural text-to-motion: "walk forward, turn left, then wave" -> a Motion on the SMPL skeleton.

Pipeline (each step in its own module):

1. ``parse``: text -> requests (one per clause); unknown words are a UserError.
2. ``primitives``: each request -> a parametric primitive with seeded parameters; the plan gets a
   0.5 s standing lead-in / lead-out when it does not start / end standing, walking and running
   ease in from / out to a standstill next to non-travelling primitives, then the plan is fitted
   to ``seconds`` (see ``fit_duration``).
3. ``blend``: per-primitive signals crossfade over 0.6 s at each boundary (slerp for rotations);
   the ground path and heading integrate the crossfaded speeds and yaw rates, so they are
   continuous and a turn keeps its exact angle.
4. ``gait``: footsteps are scheduled, every contact gets one fixed world plant, swings join them.
5. ``legs``: the pelvis is lowered where needed for reach, then two-bone IK puts every foot
   exactly on its track: planted feet do not slide (measured by ``motion.contact.skating``).
6. spine, head and arms come from the primitives, crossfaded by slerp.

Output: skeleton ``smpl`` with ``reference_offsets('smpl')``, modelling frame Y up, the root's
rotation mapping it into the Z-up world (``Y_UP_TO_Z_UP`` at heading 0: the character starts at
the origin facing -Y), the ball of the standing foot on z = 0.
"""

from __future__ import annotations

import numpy as np

from motion.errors import check_number
from motion.generate.blend import crossfade, crossfade_quats, integrate, transition_weights
from motion.generate.body import (
    INDEX,
    NAMES,
    OFFSETS,
    PARENTS,
    PELVIS_HEIGHT,
    SKELETON,
    axis_rotation,
    forward,
    heading_frame,
    left,
)
from motion.generate.gait import foot_tracks, homes, lead, schedule
from motion.generate.legs import reachable_drop, solve_leg
from motion.generate.parse import Request, parse
from motion.generate.pose import to_quats, torso
from motion.generate.primitives import Idle, Primitive, build
from motion.motion import MAX_FPS, Motion
from motion.rotations import matrix_to_axis_angle, quat_to_matrix

MAX_SECONDS = 3600.0  # longest clip generated
LEAD_IN = 0.5  # seconds of standing added before a plan that starts moving (and after one that ends so)
PELVIS_KEYS = ("drop", "fwd", "lat", "pitch", "roll", "yaw", "lift")

__all__ = ["generate_motion", "plan"]


def generate_motion(text: str, seconds: float | None = None, fps: float = 30.0, seed: int = 0) -> Motion:
    """Motion for ``text``; ``seconds`` fixes the total length (default: the natural length)."""
    fps = check_number(fps, "fps", above=0, maximum=MAX_FPS)
    if seconds is not None:
        seconds = check_number(seconds, "seconds", above=0, maximum=MAX_SECONDS)
    seed = check_number(seed, "seed", minimum=0, integer=True)
    prims = plan(text, seed, seconds)
    total = seconds if seconds is not None else prims[-1].start + prims[-1].duration
    n = max(1, int(round(total * fps)))
    return synthesize(prims, np.arange(n) / fps, fps).replace(shape={"text": text, "seed": int(seed)})


def plan(text: str, seed: int = 0, seconds: float | None = None) -> list[Primitive]:
    """Primitives for ``text`` with sampled parameters, start times and durations."""
    rng = np.random.default_rng(seed)
    prims = [build(req, rng) for req in parse(text)]
    if prims[0].kind != "idle":
        prims.insert(0, _standing(LEAD_IN, rng))
    if prims[-1].kind != "idle":
        prims.append(_standing(LEAD_IN, rng))
    for before, prim, after in zip([None] + prims[:-1], prims, prims[1:] + [None]):
        prim.set_neighbours(before, after)
    if seconds is not None:
        fit_duration(prims, seconds, rng)
    start = 0.0
    for p in prims:
        p.start = start
        start += p.duration
    return prims


def _standing(seconds: float, rng: np.random.Generator) -> Primitive:
    return Idle(Request("idle", "stand", quantities={"seconds": seconds}), rng)


def fit_duration(prims: list[Primitive], seconds: float, rng: np.random.Generator) -> None:
    """Make the plan last ``seconds``: primitives whose length the text did not fix (no "for N
    seconds", "N steps", "N times", ...) share the difference in proportion to their length;
    none shrinks below half its natural length. Time still missing is a standing idle at the end;
    time still too much is cut off the end of the clip."""
    total = sum(p.duration for p in prims)
    flexible = [p for p in prims if p.stretchable]
    if seconds > total:
        if flexible:
            scale = 1.0 + (seconds - total) / sum(p.duration for p in flexible)
            for p in flexible:
                p.retime(p.duration * scale)
        else:
            prims.append(_standing(seconds - total, rng))
        return
    excess = total - seconds
    while excess > 1e-9 and flexible:
        room = sum(p.duration - p.min_duration for p in flexible)
        if room <= 1e-9:
            break
        take = min(1.0, excess / room)
        for p in flexible:
            cut = (p.duration - p.min_duration) * take
            p.retime(p.duration - cut)
            excess -= cut
        flexible = [p for p in flexible if p.duration > p.min_duration + 1e-9]


def synthesize(prims: list[Primitive], t: np.ndarray, fps: float) -> Motion:
    """Evaluate, blend and solve the plan on the frame times ``t``."""
    T = len(t)
    weights = transition_weights(t, [p.start for p in prims], [p.duration for p in prims])
    locals_ = [t - p.start for p in prims]

    def blended(fn):
        return crossfade([np.asarray(fn(p, tl), dtype=np.float64) for p, tl in zip(prims, locals_)], weights)

    # ground path: heading first, then position from the heading-frame velocities
    velocity = blended(lambda p, tl: np.stack(p.velocity(tl), -1))
    psi = integrate(velocity[:, 2], fps)
    planar = velocity[:, :1] * forward(psi) + velocity[:, 1:2] * left(psi)
    ground = integrate(planar, fps)

    stance = blended(lambda p, tl: np.broadcast_to(p.stance(), (len(tl), 3)))
    tracks = foot_tracks(schedule(prims), t, homes(t, ground, psi, stance), psi)
    foot_lead = lead(tracks, psi)

    # pelvis: blended offsets, walking hip yaw, spring-mass dip while running, then reach
    pelvis = [p.pelvis(tl) for p, tl in zip(prims, locals_)]
    pel = {k: crossfade([sig.get(k, np.zeros(T)) for sig in pelvis], weights) for k in PELVIS_KEYS}
    gains = blended(lambda p, tl: np.broadcast_to([p.pelvis_yaw_gain, p.compression], (len(tl), 2)))
    hip_yaw = -gains[:, 0] * foot_lead
    dip = gains[:, 1] * np.nansum(np.sin(np.pi * np.nan_to_num(tracks.stance_progress)), axis=0)
    pelvis_rot = (heading_frame(psi) @ axis_rotation("y", pel["yaw"] + hip_yaw) @ axis_rotation("x", pel["pitch"])
                  @ axis_rotation("z", -pel["roll"]))
    pelvis_pos = ground + pel["fwd"][:, None] * forward(psi) + pel["lat"][:, None] * left(psi)
    pelvis_pos[:, 2] = PELVIS_HEIGHT - pel["drop"] - dip + pel["lift"]
    pelvis_pos[:, 2] += reachable_drop(pelvis_pos, pelvis_rot, tracks, fps)

    upper = crossfade_quats([to_quats(p.upper(tl, foot_lead), T) for p, tl in zip(prims, locals_)], weights)
    local = quat_to_matrix(upper)
    counter = torso(0.0, yaw=-hip_yaw, n=T)  # the chest keeps facing the heading while the hips swing
    for name, m in counter.items():
        if name.startswith("spine"):
            local[:, INDEX[name]] = m @ local[:, INDEX[name]]
    local[:, 0] = pelvis_rot
    for foot, side in enumerate(("left", "right")):
        for name, m in solve_leg(side, foot, pelvis_pos, pelvis_rot, tracks, fps).items():
            local[:, INDEX[name]] = m
    return Motion(skeleton=SKELETON, joint_names=NAMES, parents=PARENTS, fps=fps,
                  rotations=matrix_to_axis_angle(local), root_translation=pelvis_pos,
                  rest_offsets=OFFSETS.copy()).validate("generated motion")
