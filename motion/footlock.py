"""Foot locking: planted feet of a retargeted clip stay where they are planted.

Retargeting copies joint rotations onto a body with other proportions and scales the root path by
the leg-length ratio; the feet then no longer land where the new stride puts them and slide. This
stage puts them back (our design, after Kovar et al. 2002, "Footskate cleanup for motion capture
editing": fixed plants per contact, analytic leg IK, blended corrections):

1. Contacts come from the SOURCE (``motion.contact.foot_contacts``: within 3 cm of the joint's
   floor level, moving slower than ``CONTACT_SPEED``), so the lock restores the contacts the
   performer had, whatever the target's proportions do to heights.
2. Each contact segment gets ONE world anchor: the target's ankle position with the foot in its
   flattest pose of the segment (the frame whose source ankle and ball are most equally near
   their floor levels). The foot keeps the world rotation retargeting gave it and rolls over a
   pivot on its sole: the ankle at heel strike, the ball at heel-off, weighted (w, 0..1) by
   which source joint is nearer its floor (``PIVOT_BAND``). With D the ankle -> ball vector the
   ankle goes to ``anchor + w (D_flat - D) + lift``: that pins the ankle (w = 0), the ball
   (w = 1) and both while the foot is flat; ``lift`` lets the pivot rise as the source's does
   within the contact band (scaled by the leg ratio), so a lifting toe is not pressed down.
   The anchor's ground position is the mean over the segment of where the retargeted foot would
   put it. Its height puts the sole of the flat foot (the lower of ankle and ball at its rest
   height above the floor) on one floor for the whole clip: the median over all segments of
   the sole height the retargeted feet imply (flat frames weigh most). Steps and stairs come
   back through ``lift``, measured from the source's floor. So a foot that other proportions
   lift off the floor (a tall Anny in a squat) is put back down, while the height retargeting
   gives the standing feet is kept: standing them on z = 0 instead is the root path's business,
   and with the pelvis kept, lifting the feet a generated clip leaves 2 cm low on Anny would
   bend the knees ~20 degrees more, a visible crouch.
3. The ankle correction (anchor target minus retargeted ankle) crosses each swing from one
   lock's correction to the next with a smoothstep, and fades in before the first lock and out
   after the last over ``BLEND_SECONDS``, so nothing pops. A swinging foot is lifted (smoothly)
   where its ankle or ball would pass nearer its floor level than the source's did (scaled):
   feet of other proportions otherwise scrape the floor, and the 3 cm contact band of
   ``motion.contact`` would count the scraping swing as sliding.
4. Legs are solved with analytic two-bone IK about the knee's anatomical hinge (its flexion
   axis in the T-pose, the body's lateral axis, carried by the thigh). The knee takes the
   closed-form flexion that gives the hip-ankle distance, always the forward-bending root, then
   the whole leg swings rigidly about the hip onto the target (minimal rotation, so the leg
   keeps its twist): the knee's change is a pure flexion. Hip-ankle distances beyond
   ``SOFT_REACH`` of the straight leg approach it exponentially (soft IK), so a target at or
   past full reach leaves the foot slightly short instead of snapping the knee straight. Feet
   keep their world rotation, toes their local rotation; the pelvis path is not touched.

The generator's IK (``motion.generate.legs``) solves the fixed SMPL leg from planned foot tracks
(its own constants, hinge about local x); this one works on any chain (Anny's twist bones ride
with their segment) and on world rotations, so the two share no code.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from motion.contact import foot_contacts
from motion.generate.legs import smooth_below
from motion.rotations import axis_angle_to_matrix, rotation_between

CONTACT_SPEED = 0.5    # m/s; a foot near the floor moving faster is gliding or pushing off, not planted
PIVOT_BAND = 0.01      # m; height difference over which the pivot moves from the heel to the ball
SOFT_REACH = 0.98      # fraction of the straight leg beyond which IK targets are eased in (soft IK)
BLEND_SECONDS = 0.15   # fade in before the first lock / out after the last (5 frames at 30 fps)


@dataclasses.dataclass(frozen=True)
class Leg:
    """One leg of the target: joint indices, the knee's flexion axis in the hip joint's frame
    (its world axis is the hip's world rotation times ``hinge``; positive = shin swings back)."""

    hip: int
    knee: int
    ankle: int
    ball: int
    hinge: np.ndarray
    rest_heights: tuple[float, float]  # ankle and ball above the floor in the rest pose (standing)


class FootContacts(NamedTuple):
    """Per frame and foot (T, F): in contact; pivot weight (0 ankle .. 1 ball); and (T, F, 2) the
    heights of ankle and ball above their floor levels, in target metres."""

    contact: np.ndarray
    pivot: np.ndarray
    above: np.ndarray

    @property
    def lift(self) -> np.ndarray:
        """(T, F) height of the pivot above its floor level."""
        return (1 - self.pivot) * self.above[..., 0] + self.pivot * self.above[..., 1]


def source_contacts(positions: np.ndarray, fps: float, feet: list[tuple[int, int]], scale: float = 1.0) -> FootContacts:
    """The contacts of the source's feet, given as (ankle, ball) joint index pairs into world
    ``positions`` (T, J, 3); heights are scaled by ``scale`` (target over source leg length)."""
    contact = foot_contacts(positions, fps, feet, max_speed=CONTACT_SPEED)
    z = positions[:, np.array(feet), 2]  # (T, F, 2)
    above = z - z.min(axis=0)
    pivot = np.clip(0.5 + (above[..., 0] - above[..., 1]) / (2 * PIVOT_BAND), 0.0, 1.0)
    return FootContacts(contact, pivot, scale * above)


def lock_feet(rotations: np.ndarray, root: np.ndarray, offsets: np.ndarray, parents: np.ndarray, legs: list[Leg],
              contacts: FootContacts, fps: float) -> np.ndarray:
    """World rotations (T, J, 3, 3) of a clip (root path ``root`` (T, 3), rest ``offsets`` in the
    modelling frame) with each leg's foot locked over the contact segments of its column of
    ``contacts`` (from ``source_contacts``)."""
    rotations = rotations.copy()
    positions = world_positions(rotations, root, offsets, parents)
    blend = max(1, int(round(BLEND_SECONDS * fps)))
    if not legs:
        return rotations
    implied, anchors = zip(*(_anchors(positions, leg, contacts, f) for f, leg in enumerate(legs)))
    soles = [a.position[2] - a.clearance for leg_anchors in anchors for a in leg_anchors]
    if not soles:
        return rotations
    floor = float(np.median(soles))  # one floor under the flat feet, robust to a foot lifted or sunk
    for f, leg in enumerate(legs):
        target = positions[:, leg.ankle] + _ankle_correction(implied[f], anchors[f], floor, blend)
        to_ball = positions[:, leg.ball, 2] - positions[:, leg.ankle, 2]
        target[:, 2] += _swing_clearance(target[:, 2], to_ball, contacts, f, fps)
        hinge = np.einsum("tij,j->ti", rotations[:, leg.hip], leg.hinge)
        thigh, shin = two_bone_ik(positions[:, leg.hip], positions[:, leg.knee], positions[:, leg.ankle], target, hinge)
        segment = _leg_segments(parents, leg)
        for j in np.flatnonzero(segment == 1):
            rotations[:, j] = thigh @ rotations[:, j]
        for j in np.flatnonzero(segment == 2):
            rotations[:, j] = shin @ rotations[:, j]
    return rotations


def world_positions(rotations: np.ndarray, root: np.ndarray, offsets: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Forward kinematics from world rotations (T, J, 3, 3): joint positions (T, J, 3)."""
    pos = np.empty(rotations.shape[:2] + (3,))
    pos[:, 0] = root
    for j in range(1, len(parents)):
        pos[:, j] = pos[:, parents[j]] + rotations[:, parents[j]] @ offsets[j]
    return pos


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray,
                hinge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World rotation changes (T, 3, 3) of the thigh and of the shin that put the ankle on
    ``target``: the knee flexes about ``hinge`` (T, 3) (forward-bending root), then the leg swings
    rigidly about the hip (see the module docstring). Positions are (T, 3)."""
    n = hinge / np.linalg.norm(hinge, axis=-1, keepdims=True)
    t, s = knee - hip, ankle - knee
    s_along = np.sum(s * n, -1, keepdims=True) * n
    s_perp = s - s_along
    # |t + R(n, a) s|^2 = |t|^2 + |s|^2 + 2 (A + B cos a + C sin a),  B cos a + C sin a = r cos(a - phi)
    A = np.sum(t * s_along, -1)
    B = np.sum(t * s_perp, -1)
    C = np.sum(t * np.cross(n, s_perp), -1)
    r, phi = np.hypot(B, C), np.arctan2(C, B)  # phi: the flexion change that straightens the leg
    reach = target - hip
    longest = np.sqrt(np.sum(t * t, -1) + np.sum(s * s, -1) + 2 * (A + r))
    distance = _soft_reach(np.linalg.norm(reach, axis=-1), np.linalg.norm(ankle - hip, axis=-1), longest)
    k = 0.5 * (distance**2 - np.sum(t * t, -1) - np.sum(s * s, -1))
    flex = phi + np.arccos(np.clip((k - A) / np.maximum(r, 1e-12), -1.0, 1.0))
    bend = axis_angle_to_matrix(n * flex[:, None])
    bent_ankle = t + np.einsum("tij,tj->ti", bend, s)
    swing = rotation_between(bent_ankle, reach)
    return swing, swing @ bend


def _soft_reach(wanted: np.ndarray, current: np.ndarray, longest: np.ndarray) -> np.ndarray:
    """Hip-ankle distance to solve for: ``wanted`` up to SOFT_REACH of the straight leg (or the
    current distance, if longer), beyond that approaching the straight leg exponentially, so a
    target out of reach never snaps the knee straight."""
    knee_free = np.maximum(current, SOFT_REACH * longest)
    room = np.maximum(longest - knee_free, 1e-9)
    soft = knee_free + room * (1.0 - np.exp(-(wanted - knee_free) / room))
    return np.where(wanted > knee_free, soft, wanted)


def _leg_segments(parents: np.ndarray, leg: Leg) -> np.ndarray:
    """Per joint: 1 rides with the thigh (hip up to the knee), 2 with the shin (knee up to the
    ankle), 0 otherwise (the foot keeps its world rotation)."""
    segment = np.zeros(len(parents), dtype=int)
    for j in range(len(parents)):
        if j == leg.ankle:
            continue
        if j in (leg.hip, leg.knee):
            segment[j] = 1 if j == leg.hip else 2
        elif parents[j] >= 0 and segment[parents[j]]:
            segment[j] = segment[parents[j]]
    return segment


def contact_segments(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in ``flags`` (T,) as half-open (start, stop) frame ranges."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


class _Anchor(NamedTuple):
    start: int
    stop: int
    position: np.ndarray  # (3,) the anchor the retargeted foot implies over the segment
    clearance: float      # its height above the flat foot's sole (rest heights, the segment's foot pitch)


def _anchors(positions: np.ndarray, leg: Leg, contacts: FootContacts, f: int) -> tuple[np.ndarray, list[_Anchor]]:
    """The anchor each frame implies, ankle minus ``w (D_flat - D) + lift`` (T, 3), and per
    contact segment its mean (the height weighted by flatness: a foot of other proportions may
    roll about another point than the source's, which biases heel and toe frames)."""
    ankle, pivot, lift = positions[:, leg.ankle], contacts.pivot[:, f], contacts.lift[:, f]
    to_ball = positions[:, leg.ball] - ankle
    implied, anchors = ankle.copy(), []
    for start, stop in contact_segments(contacts.contact[:, f]):
        frames = slice(start, stop)
        # the flattest frame: ankle and ball most equally near their floor levels
        flat = start + int(np.argmin(np.abs(pivot[frames] - 0.5)))
        implied[frames] -= pivot[frames, None] * (to_ball[flat] - to_ball[frames])
        implied[frames, 2] -= lift[frames]
        position = implied[frames].mean(axis=0)
        position[2] = np.average(implied[frames, 2], weights=1.0 - np.abs(2.0 * pivot[frames] - 1.0) + 1e-6)
        clearance = max(leg.rest_heights[0], leg.rest_heights[1] - to_ball[flat, 2])
        anchors.append(_Anchor(start, stop, position, clearance))
    return implied, anchors


def _ankle_correction(implied: np.ndarray, anchors: list[_Anchor], floor: float, blend: int) -> np.ndarray:
    """World offsets (T, 3) from the retargeted ankle to its locked target: in each contact
    segment the anchor's ground position with the flat foot's sole at ``floor``; crossed from
    lock to lock between segments and faded to zero outside the first and last."""
    correction = np.zeros_like(implied)
    if not anchors:
        return correction
    for a in anchors:
        target = np.append(a.position[:2], floor + a.clearance)
        correction[a.start:a.stop] = target - implied[a.start:a.stop]
    # between two locks the correction crosses the swing
    for before, after in zip(anchors[:-1], anchors[1:]):
        gap_start, gap_stop = before.stop, after.start
        s = _smoothstep(np.arange(1, gap_stop - gap_start + 1) / (gap_stop - gap_start + 1))[:, None]
        correction[gap_start:gap_stop] = (1 - s) * correction[gap_start - 1] + s * correction[gap_stop]
    # before the first and after the last lock it fades in / out over `blend` frames
    first, last = anchors[0].start, anchors[-1].stop
    fade = _smoothstep(1 - np.arange(1, blend + 1) / (blend + 1))[:, None]
    n_in, n_out = min(blend, first), min(blend, len(implied) - last)
    correction[first - n_in:first] = fade[:n_in][::-1] * correction[first]
    correction[last:last + n_out] = fade[:n_out] * correction[last - 1]
    return correction


def _swing_clearance(ankle_z: np.ndarray, to_ball_z: np.ndarray, contacts: FootContacts, f: int,
                     fps: float) -> np.ndarray:
    """Lift (T,) for the ankle targets of a swinging foot whose ankle or ball would pass nearer
    its floor level (lowest height while in contact) than the source's did (heights scaled);
    zero in contact frames. Smooth: a running maximum then a Gaussian of 0.03 s, never below
    what is needed."""
    contact = contacts.contact[:, f]
    if not contact.any():
        return np.zeros_like(ankle_z)
    joints = np.stack([ankle_z, ankle_z + to_ball_z], -1)
    need = np.clip((contacts.above[:, f] - (joints - joints[contact].min(axis=0))).max(axis=1), 0.0, None)
    need[contact] = 0.0
    return np.where(contact, 0.0, -smooth_below(-need, 0.03 * fps))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
