"""Footsteps: when each foot is planted, where, and the foot's path between plants.

A foot on the ground does not move: each contact interval gets one world plant position (of the
ball of the foot, SMPL's ``*_foot`` joint) and heading, and the foot stays exactly there while
the heel rises about it before lift-off. The plant is the foot's *home* (its place under the hip
for the current ground path and stance) at 40% of the contact (at most 0.4 s after landing), so a
walking foot lands ahead of the body and leaves behind it, as in human gait, and a foot landing
as the body stops stands where the body comes to rest. Swings lift the foot vertically first and
set it down vertically last (no horizontal motion within a few centimetres of the floor).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from motion.generate.blend import smoothstep
from motion.generate.body import INDEX, REST, axis_rotation, forward, heading_frame, left
from motion.generate.primitives import LEFT, NEUTRAL_STANCE, RIGHT, Primitive, Step

TOE_OUT = 0.1  # rad each foot turns outwards
TOE = {side: REST[INDEX[f"{side}_foot"]] for side in ("left", "right")}
ANKLE_FROM_TOE = REST[INDEX["left_ankle"]] - REST[INDEX["left_foot"]]  # same on both sides but x
ADJUST_STEP = 0.4  # seconds per stance-change step
MIN_CONTACT = 0.08  # seconds a foot stays down between two swings
STEP_AHEAD = 0.1  # seconds a stepping primitive starts stepping before its start
PLANT_AT = 0.4  # fraction of a contact at which the body passes over the planted foot
VERTICAL_CLEARANCE = 0.04  # m a swinging foot rises before moving sideways (contact band: 3 cm)


@dataclasses.dataclass
class FootTracks:
    """Per foot (0 left, 1 right) and frame: ball-of-foot position, foot heading, heel-rise pitch,
    the progress (0..1) through the current short contact, and in
    mid-swing how far the foot's orientation follows the shin (the ankle relaxes: the planned path
    then holds for the ankle, the ball of the foot swings with the shin)."""

    toe: np.ndarray  # (2, T, 3)
    heading: np.ndarray  # (2, T)
    pitch: np.ndarray  # (2, T)
    stance_progress: np.ndarray  # (2, T), NaN where not in a contact shorter than a second
    dangle: np.ndarray  # (2, T) 0..1: how much a swinging foot follows the shin instead of its plan

    def ankle(self, foot: int) -> np.ndarray:
        """Ankle positions (T, 3) implied by the toe, heading and heel rise."""
        offset = ANKLE_FROM_TOE * [1.0 if foot == LEFT else -1.0, 1.0, 1.0]
        return self.toe[foot] + np.einsum("tij,j->ti", foot_rotation(self.heading[foot], self.pitch[foot]), offset)


def foot_rotation(heading: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """World rotation (T, 3, 3) of a foot: heading about world Z, heel rise about its lateral axis."""
    return heading_frame(heading) @ axis_rotation("x", pitch)


def schedule(prims: list[Primitive]) -> list[Step]:
    """All footsteps of the plan, in time order, each foot's swings separated by contacts."""
    steps: list[Step] = []
    free = [0.0, 0.0]  # earliest lift-off per foot
    next_foot, stance = LEFT, NEUTRAL_STANCE
    for prim in prims:
        if prim.stepping:
            # stepping starts slightly before the primitive's start, before the body speeds up
            new = prim.steps(max(prim.start - STEP_AHEAD, min(free)), next_foot)
        elif prim.stance() != stance:
            t0 = max(prim.start, max(free))
            new = [Step(foot, t0 + k * ADJUST_STEP, t0 + (k + 0.8) * ADJUST_STEP, 0.05, 0.2)
                   for k, foot in enumerate((next_foot, 1 - next_foot))]
        else:
            new = []
        stance = prim.stance()
        delay = max([free[s.foot] - s.lift for s in new[:2]] + [0.0])
        for s in new:
            s = dataclasses.replace(s, lift=s.lift + delay, land=s.land + delay)
            if s.lift < free[s.foot]:  # a swing starting before this foot landed: skip it
                continue
            steps.append(s)
            free[s.foot] = s.land + MIN_CONTACT
            next_foot = 1 - s.foot
    return sorted(steps, key=lambda s: s.lift)


def homes(t: np.ndarray, xy: np.ndarray, psi: np.ndarray, stance: np.ndarray) -> np.ndarray:
    """Where each foot's ball stands for the ground path and stance (width scale, left and right
    fore-aft offsets) at every frame: (2, T, 3)."""
    out = np.zeros((2, len(t), 3))
    for foot, side in ((LEFT, "left"), (RIGHT, "right")):
        lateral = TOE[side][0] * stance[:, 0]
        ahead = TOE[side][2] + stance[:, 1 + foot]
        out[foot] = xy + lateral[:, None] * left(psi) + ahead[:, None] * forward(psi)
    return out


def foot_tracks(steps: list[Step], t: np.ndarray, home: np.ndarray, psi: np.ndarray) -> FootTracks:
    """Plant every contact interval and interpolate the swings, per frame."""
    T = len(t)
    toe = np.zeros((2, T, 3))
    heading = np.zeros((2, T))
    pitch = np.zeros((2, T))
    progress = np.full((2, T), np.nan)
    dangle = np.zeros((2, T))
    for foot in (LEFT, RIGHT):
        swings = [s for s in steps if s.foot == foot]
        bounds = [-np.inf] + [x for s in swings for x in (s.lift, s.land)] + [np.inf]
        plants = [_plant(t, home[foot], psi, bounds[2 * k], bounds[2 * k + 1], foot) for k in range(len(swings) + 1)]
        for k, (a, b) in enumerate(zip(bounds[::2], bounds[1::2])):  # contacts
            m = (t >= a) & (t < b)
            toe[foot, m] = plants[k][0]
            heading[foot, m] = plants[k][1]
            if b - a < 1.0:
                progress[foot, m] = (t[m] - a) / (b - a)
            if k < len(swings):  # heel rise before lift-off, pivoting about the ball of the foot
                ramp = min(0.45 * (b - a), 0.35)
                r = m & (t >= b - ramp)
                pitch[foot, r] = swings[k].heel * smoothstep((t[r] - b + ramp) / ramp)
        for k, s in enumerate(swings):
            m = (t >= s.lift) & (t < s.land)
            u = (t[m] - s.lift) / (s.land - s.lift)
            (p0, h0), (p1, h1) = plants[k], plants[k + 1]
            lift = _ballistic if s.ballistic else _stepping
            edge = _vertical_edge(lift, s.height)
            across = smoothstep((u - edge) / (1 - 2 * edge))
            toe[foot, m] = p0 + (p1 - p0) * across[:, None]
            toe[foot, m, 2] = s.height * lift(u)
            if s.ballistic:
                pitch[foot, m] = s.heel * (1 - smoothstep((u - 0.6) / 0.4))
            else:
                pitch[foot, m] = s.heel * (1 - smoothstep(u / 0.55))
            heading[foot, m] = h0 + _wrap(h1 - h0) * across
            dangle[foot, m] = smoothstep(u / 0.25) * smoothstep((1 - u) / 0.35)
    return FootTracks(toe, heading, pitch, progress, dangle)


def _stepping(u: np.ndarray) -> np.ndarray:
    """Height profile (0..1) of a step: quick lift, flat top, quick set-down."""
    return np.sin(np.pi * u) ** 0.6


def _ballistic(u: np.ndarray) -> np.ndarray:
    """Height profile (0..1) of a jump: a parabola."""
    return 4 * u * (1 - u)


def _vertical_edge(lift, height: float) -> float:
    """Fraction of a swing at each end during which the foot only moves vertically: until it is
    VERTICAL_CLEARANCE above the floor, so it never moves sideways inside the contact band."""
    u = np.linspace(0.0, 0.5, 501)
    above = np.flatnonzero(height * lift(u) >= VERTICAL_CLEARANCE)
    return float(max(u[above[0]] if above.size else 0.3, 0.03))


def _plant(t, home, psi, a, b, foot) -> tuple[np.ndarray, float]:
    """Ball-of-foot position and heading for a contact from ``a`` to ``b`` (seconds): the foot's
    home at 40% of the contact (at most 0.4 s in), or at the first frame for a foot that starts
    the clip planted."""
    when = t[0] if not np.isfinite(a) else a + min(PLANT_AT * (b - a), 0.4)
    when = np.clip(when, t[0], t[-1])
    pos = np.array([np.interp(when, t, home[:, d]) for d in range(2)] + [0.0])
    heading = float(np.interp(when, t, psi))
    return pos, heading + (TOE_OUT if foot == LEFT else -TOE_OUT)


def _wrap(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def lead(tracks: FootTracks, psi: np.ndarray) -> np.ndarray:
    """How far (m) the left foot is ahead of the right one along the heading, per frame."""
    return np.sum((tracks.toe[LEFT] - tracks.toe[RIGHT]) * forward(psi), axis=-1)

