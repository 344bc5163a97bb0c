"""Retargeting a Motion onto another skeleton through a shared T-pose.

Method (our design). Each skeleton gets a canonical T-pose built from its own rest pose by turning
limb segments, minimal rotation each, parents first: upper arms, forearms and hands point along
the arm line (subject's left +X, right -X), collar segments are levelled (vertical tilt
removed, heading kept), thighs and shins point straight down, and each finger's phalanges are
straightened along its knuckle direction (wrist -> knuckle). Spine, neck, head, feet and thumbs
keep their rest orientation. For every joint, ``H_j(t) = G_j(t) T_j^-1`` is its world rotation
relative to that T-pose (``G`` from forward kinematics, ``T`` the T-pose's world rotation).
The target joint takes the source's H (``G'_j = H T'_j``) where the joints correspond:

- by name (SMPL-family <-> SMPL-family, Anny <-> Anny), else through the canonical SMPL-X joint
  names each rig declares (Anny: ``ANNY_CANONICAL``); secondary bones that share a segment with a
  canonical joint (Anny's twist bones, hip bones, all five toe roots, the second and third neck
  bones, the shoulder bone) copy that joint's H;
- along the spine (pelvis to neck), segments are matched by arc length: each target segment
  takes the overlap-weighted chordal mean of the H of the source segments it overlaps, which
  distributes e.g. SMPL's three spine joints over Anny's five;
- a missing hand falls back to the middle finger's root and vice versa (SMPL's single hand joint
  drives all four finger roots; thumbs then keep their T-pose relation to the wrist);
- every other joint (metacarpals, distal toe bones, jaw, eyes without a source) keeps its T-pose
  relation to its parent (H_j = H_parent).

Root translation: the source root's world path scaled by the ratio of the T-pose leg lengths
(pelvis height above the ankles), target over source; the height above the floor scales the same.

Foot lock (``foot_lock=True``, the default): other proportions make planted feet slide, so the
feet are then locked over the source's contacts with two-bone leg IK (``motion.footlock``). It
is skipped onto the source's own skeleton (same joints and rest offsets), where retargeting is
exact and adds no sliding.
"""

from __future__ import annotations

import numpy as np

from motion.asset import AvatarAsset
from motion.errors import UserError
from motion.footlock import Leg, lock_feet, source_contacts
from motion.motion import Motion
from motion.reference_skeleton import reference_offsets
from motion.rotations import Y_UP_TO_Z_UP, matrix_to_axis_angle, rotation_between
from motion.skeletons import SKELETONS, SMPL_FAMILY

_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_SIDES = (("left", "L", 1.0), ("right", "R", -1.0))


def _anny_canonical() -> dict[str, str]:
    out = {"pelvis": "root", "neck": "neck01", "head": "head"}
    for side, s, _ in _SIDES:
        out.update({
            f"{side}_hip": f"upperleg01.{s}", f"{side}_knee": f"lowerleg01.{s}", f"{side}_ankle": f"foot.{s}",
            f"{side}_foot": f"toe3-1.{s}", f"{side}_collar": f"clavicle.{s}",
            f"{side}_shoulder": f"upperarm01.{s}", f"{side}_elbow": f"lowerarm01.{s}",
            f"{side}_wrist": f"wrist.{s}", f"{side}_eye_smplhf": f"eye.{s}",
        })
        for f, finger in enumerate(_FINGERS, start=1):
            out.update({f"{side}_{finger}{k}": f"finger{f}-{k}.{s}" for k in (1, 2, 3)})
    return out


ANNY_CANONICAL = _anny_canonical()
ANNY_SECONDARY = {  # Anny bone -> canonical joint whose segment it shares
    "neck02": "neck", "neck03": "neck",
    **{f"{b}.{s}": j for side, s, _ in _SIDES for b, j in (
        ("pelvis", "pelvis"), ("upperleg02", f"{side}_hip"), ("lowerleg02", f"{side}_knee"),
        ("shoulder01", f"{side}_collar"), ("upperarm02", f"{side}_shoulder"), ("lowerarm02", f"{side}_elbow"),
        *((f"toe{t}-1", f"{side}_foot") for t in (1, 2, 4, 5)))},
}
ANNY_SPINE = ["spine05", "spine04", "spine03", "spine02", "spine01", "neck01"]
SMPL_SPINE = ["pelvis", "spine1", "spine2", "spine3", "neck"]
_FALLBACK = {f"{side}_{x}": f"{side}_{y}" for side, _, _ in _SIDES for x, y in (
    ("hand", "middle1"), ("index1", "hand"), ("middle1", "hand"), ("ring1", "hand"), ("pinky1", "hand"))}


class Rig:
    """A skeleton with what retargeting needs: rest joints (world), modelling frame, the canonical
    joint names it has, its spine chain and its T-pose world rotations."""

    def __init__(self, skeleton: str, names: list[str], parents: np.ndarray, offsets: np.ndarray,
                 model_to_world: np.ndarray):
        self.skeleton, self.names, self.parents = skeleton, list(names), np.asarray(parents)
        self.model_to_world = model_to_world
        self.index = {n: i for i, n in enumerate(self.names)}
        # rest pose in the world: identity local rotations, root rotation = model_to_world
        joints = np.zeros((len(names), 3))
        for j in range(1, len(names)):
            joints[j] = joints[self.parents[j]] + model_to_world @ offsets[j]
        self.rest = joints
        if skeleton == "anny":
            self.canonical = {c: b for c, b in ANNY_CANONICAL.items() if b in self.index}
            self.secondary = {b: c for b, c in ANNY_SECONDARY.items() if b in self.index}
            self.spine = [b for b in ANNY_SPINE if b in self.index]
        else:
            self.canonical = {n: n for n in self.names}
            self.secondary = {}
            self.spine = [b for b in SMPL_SPINE if b in self.index]
        self.tpose = self._tpose_rotations()
        positions = self.tpose_positions()
        ankles = [positions[self.index[self.canonical[a]]][2] for a in ("left_ankle", "right_ankle")
                  if a in self.canonical]
        if not ankles:
            raise UserError(skeleton, "retargeting needs ankle joints to measure the leg length")
        self.leg_length = positions[0, 2] - float(np.mean(ankles))

    @classmethod
    def of_asset(cls, asset: AvatarAsset) -> "Rig":
        return cls(asset.skeleton, asset.joint_names, asset.parents, asset.rest_offsets, asset.model_to_world)

    @classmethod
    def of_motion(cls, motion: Motion) -> "Rig":
        if motion.skeleton not in (*SMPL_FAMILY, "humanml3d", "anny"):
            raise UserError(motion.skeleton, "retargeting reads SMPL/SMPL-H/SMPL-X/HumanML3D and Anny motions; "
                                             f"skeleton {motion.skeleton!r} is not one of them")
        offsets = motion.rest_offsets
        if offsets is None:
            if motion.skeleton not in SKELETONS:
                raise UserError(motion.skeleton, "the motion has no rest skeleton to retarget from")
            offsets = reference_offsets(motion.skeleton)
        frame = np.eye(3) if motion.skeleton == "anny" else Y_UP_TO_Z_UP
        return cls(motion.skeleton, motion.joint_names, motion.parents, offsets, frame)

    def bone(self, canonical: str) -> int | None:
        name = self.canonical.get(canonical)
        return None if name is None else self.index[name]

    def _tpose_rules(self) -> list[tuple[int, int, object]]:
        """(joint, joint it points at, direction) in parents-first order; direction is a vector,
        'level' (drop the vertical component) or ('along', a, b) (the T-pose direction a -> b)."""
        rules = []
        for side, _, sign in _SIDES:
            x = np.array([sign, 0.0, 0.0])
            hand_tip = f"{side}_middle1" if f"{side}_middle1" in self.canonical else f"{side}_hand"
            chain = [(f"{side}_collar", f"{side}_shoulder", "level"), (f"{side}_shoulder", f"{side}_elbow", x),
                     (f"{side}_elbow", f"{side}_wrist", x), (f"{side}_wrist", hand_tip, x),
                     (f"{side}_hip", f"{side}_knee", np.array([0.0, 0.0, -1.0])),
                     (f"{side}_knee", f"{side}_ankle", np.array([0.0, 0.0, -1.0]))]
            for finger in _FINGERS[1:]:
                knuckle = ("along", f"{side}_wrist", f"{side}_{finger}1")
                chain += [(f"{side}_{finger}1", f"{side}_{finger}2", knuckle),
                          (f"{side}_{finger}2", f"{side}_{finger}3", knuckle)]
            for joint, toward, direction in chain:
                j, k = self.bone(joint), self.bone(toward)
                if j is None or k is None:
                    continue
                if isinstance(direction, tuple):
                    a, b = self.bone(direction[1]), self.bone(direction[2])
                    if a is None or b is None:
                        continue
                    direction = ("along", a, b)
                rules.append((j, k, direction))
        return sorted(rules, key=lambda r: r[0])

    def _tpose_rotations(self) -> np.ndarray:
        """World rotations (J, 3, 3) taking each joint's rest frame to the T-pose."""
        J = len(self.names)
        rot = np.broadcast_to(np.eye(3), (J, 3, 3)).copy()
        rules = {j: (k, d) for j, k, d in self._tpose_rules()}
        for j in range(J):
            if j:
                rot[j] = rot[self.parents[j]]
            if j in rules:
                k, direction = rules[j]
                current = rot[j] @ (self.rest[k] - self.rest[j])
                if isinstance(direction, str):      # level: keep the heading, drop the tilt
                    direction = current * [1.0, 1.0, 0.0]
                elif isinstance(direction, tuple):  # along the (already posed) a -> b direction
                    pos = self._positions(rot)
                    direction = pos[direction[2]] - pos[direction[1]]
                rot[j] = rotation_between(current, direction) @ rot[j]
        return rot

    def _positions(self, rot: np.ndarray) -> np.ndarray:
        pos = self.rest.copy()
        for j in range(1, len(self.names)):
            p = self.parents[j]
            pos[j] = pos[p] + rot[p] @ (self.rest[j] - self.rest[p])
        return pos

    def tpose_positions(self) -> np.ndarray:
        return self._positions(self.tpose)

    def spine_arc(self) -> np.ndarray:
        """Normalised arc length of the spine chain's joints in the T-pose (0 pelvis .. 1 neck)."""
        pos = self.tpose_positions()[[self.index[b] for b in self.spine]]
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pos, axis=0), axis=1))])
        return arc / arc[-1]


def _chordal_mean(rotations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted chordal L2 mean of rotations (T, n, 3, 3) -> (T, 3, 3) (SVD projection)."""
    m = np.einsum("n,tnab->tab", weights, rotations)
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ (vt * np.stack([np.ones_like(d), np.ones_like(d), d], -1)[..., :, None])


def _overlap(target_arc: np.ndarray, source_arc: np.ndarray) -> np.ndarray:
    """(n_target_segments, n_source_segments) overlap fractions of each target segment."""
    lo = np.maximum(target_arc[:-1, None], source_arc[None, :-1])
    hi = np.minimum(target_arc[1:, None], source_arc[None, 1:])
    w = np.clip(hi - lo, 0.0, None)
    return w / np.maximum(w.sum(1, keepdims=True), 1e-12)


def correspondence(source: Rig, target: Rig) -> list[tuple[str, object]]:
    """Per target joint: ('copy', source joint), ('mean', (source joints, weights)) or ('inherit', None)."""
    plan: list[tuple[str, object]] = []
    same = source.skeleton == target.skeleton or (source.skeleton != "anny" and target.skeleton != "anny")
    spine_weights = _overlap(target.spine_arc(), source.spine_arc())
    target_canon = {b: c for c, b in target.canonical.items()}
    source_spine = [source.index[b] for b in source.spine[:-1]]
    for j, name in enumerate(target.names):
        if j == 0:
            plan.append(("copy", 0))
            continue
        if same and name in source.index:
            plan.append(("copy", source.index[name]))
            continue
        canon = target_canon.get(name) or target.secondary.get(name)
        src = None if canon is None else source.bone(canon)
        if src is None and canon in _FALLBACK:
            src = source.bone(_FALLBACK[canon])
        if src is not None:
            plan.append(("copy", src))
        elif name in target.spine[:-1]:
            plan.append(("mean", (source_spine, spine_weights[target.spine.index(name)])))
        else:
            plan.append(("inherit", None))
    return plan


def _legs(source: Rig, target: Rig, asset: AvatarAsset) -> tuple[list[tuple[int, int]], list[Leg]]:
    """The (ankle, ball) joints of the source's feet and the target's matching legs, for the
    sides where both skeletons have hip, knee, ankle and ball of the foot."""
    feet, legs = [], []
    lateral = np.array([1.0, 0.0, 0.0])  # knee flexion axis in the T-pose (legs straight down)
    for side, _, _ in _SIDES:
        joints = [f"{side}_{j}" for j in ("hip", "knee", "ankle", "foot")]
        src, dst = [source.bone(j) for j in joints[2:]], [target.bone(j) for j in joints]
        if None in src or None in dst:
            continue
        hip, knee, ankle, ball = dst
        feet.append((src[0], src[1]))
        legs.append(Leg(hip, knee, ankle, ball, hinge=target.model_to_world.T @ target.tpose[hip].T @ lateral,
                        rest_heights=(float(asset.rest_joints[ankle, 2]), float(asset.rest_joints[ball, 2]))))
    return feet, legs


def retarget(motion: Motion, target: AvatarAsset, foot_lock: bool = True) -> Motion:
    """``motion`` on ``target``'s skeleton (see the module docstring for the method); with
    ``foot_lock`` the feet stay planted over the source's contacts."""
    source_rig, target_rig = Rig.of_motion(motion), Rig.of_asset(target)
    offsets = motion.rest_offsets if motion.rest_offsets is not None else reference_offsets(motion.skeleton)
    G, p = motion.global_transforms(offsets)
    # world rotation relative to the T-pose: G_j (rest world frame)^-1 T_j^-1, rest world frame = M
    H_src = G @ source_rig.model_to_world.T @ np.swapaxes(source_rig.tpose, -1, -2)
    T, J = motion.n_frames, len(target_rig.names)
    H = np.empty((T, J, 3, 3))
    for j, (kind, arg) in enumerate(correspondence(source_rig, target_rig)):
        if kind == "copy":
            H[:, j] = H_src[:, arg]
        elif kind == "mean":
            joints, weights = arg
            H[:, j] = _chordal_mean(H_src[:, joints], weights)
        else:
            H[:, j] = H[:, target_rig.parents[j]]
    G_t = H @ target_rig.tpose @ target_rig.model_to_world
    scale = target_rig.leg_length / source_rig.leg_length
    root = p[:, 0] * scale
    same_body = source_rig.names == target_rig.names and np.allclose(offsets, target.rest_offsets)
    if foot_lock and not same_body and T > 1:
        feet, legs = _legs(source_rig, target_rig, target)
        contacts = source_contacts(p, motion.fps, feet, scale)
        G_t = lock_feet(G_t, root, target.rest_offsets, target_rig.parents, legs, contacts, motion.fps)
    local = G_t.copy()
    local[:, 1:] = np.swapaxes(G_t[:, target_rig.parents[1:]], -1, -2) @ G_t[:, 1:]
    return Motion(
        skeleton=target.skeleton, joint_names=list(target.joint_names), parents=target.parents,
        fps=motion.fps, rotations=matrix_to_axis_angle(local), root_translation=root,
        rest_offsets=target.rest_offsets, shape=dict(target.shape),
    ).validate("retarget")
