"""BVH motion capture files: any skeleton, any channel order, position channels on any joint.

Reading. BVH is Y up by convention (the character facing +Z, like SMPL's modelling frame), so the
file's frame becomes the Motion's modelling frame: OFFSETs are the rest offsets, non-root rotations
are kept as they are, and the root's rotation and position are mapped into our Z-up world with
``Y_UP_TO_Z_UP``. Rotation channels compose in the order listed (``Zrotation Xrotation Yrotation``
means R = Rz Rx Ry). Root position channels are absolute positions (as Blender reads them); a
joint's OFFSET supplies any position component it has no channel for. Position channels on
non-root joints (some exporters put 6 channels on every joint) become that joint's rest offset
(median over the clip); if they move more than 1 mm the stretching is dropped with a warning, since
a Motion has fixed bones. ``End Site`` entries are parsed and, carrying no rotation, not kept.
Units: ``units="m"|"cm"|"mm"|"inch"``; by default guessed from the rest skeleton's height H in
file units, for a person 1-2.5 m tall: H < 3 metres, H < 100 inches (CMU's conversions), H < 300
centimetres (Mixamo, LAFAN1), else millimetres. ``Frame Time`` gives the frame rate.

Writing. Metres (Blender's BVH importer default scale), Y up, ``ZXY`` rotation channels, the root
with position channels; a leaf joint gets an ``End Site`` half its bone's length beyond it.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.fileio import atomic_path
from motion.motion import Motion
from motion.rotations import (Y_UP_TO_Z_UP, axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle,
                              matrix_to_euler)
from motion.skeletons import SKELETONS

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254}
_CHANNELS = ("xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation")
_WRITE_ORDER = "ZXY"


class _Joint:
    def __init__(self, name: str, parent: int):
        self.name, self.parent = name, parent
        self.offset = np.zeros(3)
        self.channels: list[str] = []
        self.first_channel = 0


def read_bvh(path: str | os.PathLike, units: str | None = None, fps: float | None = None) -> Motion:
    """Parse a BVH file into a validated Motion (skeleton named after a known one when they match)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(path, f"cannot read ({exc.strerror})") from None
    sections = re.split(r"^\s*MOTION\s*$", text, maxsplit=1, flags=re.MULTILINE)
    if len(sections) != 2:
        raise UserError(path, "not a BVH file (no MOTION section)")
    head, body = sections
    joints, end_sites = _parse_hierarchy(head.split(), path)
    frame_count, frame_time, values = _parse_motion(body, sum(len(j.channels) for j in joints), path)
    if fps is None:
        fps = 1.0 / frame_time
        fps = float(round(fps)) if abs(fps - round(fps)) < 1e-3 * fps else fps
    scale = _unit_scale(joints, end_sites, units, path)

    names = [j.name for j in joints]
    if len(set(names)) != len(names):
        raise UserError(path, "joint names are not unique")
    parents = np.array([j.parent for j in joints])
    offsets = np.array([j.offset for j in joints])
    rotations = np.zeros((frame_count, len(joints), 3))
    for index, joint in enumerate(joints):
        channel_values = values[:, joint.first_channel: joint.first_channel + len(joint.channels)]
        position = np.repeat(joint.offset[None], frame_count, axis=0)
        matrix = np.broadcast_to(np.eye(3), (frame_count, 3, 3))
        for k, channel in enumerate(joint.channels):
            axis = "XYZ".index(channel[0].upper())
            if channel.endswith("position"):
                position[:, axis] = channel_values[:, k]
            else:
                matrix = matrix @ euler_to_matrix(channel_values[:, k:k + 1], channel[0].upper())
        rotations[:, index] = matrix_to_axis_angle(matrix)
        if index == 0:
            root_translation = position
        elif any(c.endswith("position") for c in joint.channels):
            offsets[index] = np.median(position, axis=0)
            if np.abs(position - offsets[index]).max() * scale > 1e-3:
                warnings.warn(f"{path}: joint {joint.name!r} has animated position channels; "
                              "a Motion has fixed bone lengths, so they are replaced by their median")
    rotations[:, 0] = matrix_to_axis_angle(Y_UP_TO_Z_UP @ axis_angle_to_matrix(rotations[:, 0]))
    name, order = _known_skeleton(names, parents)
    return Motion(
        skeleton=name,
        joint_names=[names[k] for k in order],
        parents=np.array([-1] + [order.index(parents[k]) for k in order[1:]]),
        fps=fps,
        rotations=rotations[:, order],
        root_translation=root_translation * scale @ Y_UP_TO_Z_UP.T,
        rest_offsets=offsets[order] * scale,
    ).validate(path)


def _parse_hierarchy(tokens: list[str], path: Path) -> tuple[list[_Joint], list[np.ndarray]]:
    """Joints in file order (parents first) and End Site positions relative to the root."""
    joints: list[_Joint] = []
    end_sites: list[np.ndarray] = []
    stack: list[int | None] = []  # joint index per open brace; None for an End Site
    channel_count = 0
    i = 0

    def number(k: int) -> float:
        try:
            return float(tokens[k])
        except (IndexError, ValueError):
            raise UserError(path, f"bad number {tokens[k] if k < len(tokens) else 'at end'!r} in HIERARCHY") from None

    try:
        if tokens[:1] != ["HIERARCHY"]:
            raise UserError(path, "not a BVH file (no HIERARCHY header)")
        i = 1
        pending: _Joint | None = None
        end_offset = None
        while i < len(tokens):
            token = tokens[i].upper()
            if token in ("ROOT", "JOINT"):
                if (token == "ROOT") != (not joints):
                    raise UserError(path, "a BVH file has exactly one ROOT, first")
                parent = next((s for s in reversed(stack) if s is not None), -1)
                pending = _Joint(tokens[i + 1], parent)
                i += 2
            elif token == "END":
                pending, end_offset = None, np.zeros(3)
                i += 2  # "End Site"
            elif token == "{":
                if pending is not None:
                    joints.append(pending)
                    stack.append(len(joints) - 1)
                    pending = None
                else:
                    stack.append(None)
                i += 1
            elif token == "}":
                if not stack:
                    raise UserError(path, "unbalanced braces in HIERARCHY")
                closed = stack.pop()
                if closed is None:
                    owner = next(s for s in reversed(stack) if s is not None)
                    end_sites.append(_chain_offset(joints, owner) + end_offset)
                i += 1
            elif token == "OFFSET":
                offset = np.array([number(i + 1), number(i + 2), number(i + 3)])
                if stack and stack[-1] is None:
                    end_offset = offset
                elif stack:
                    joints[stack[-1]].offset = offset
                i += 4
            elif token == "CHANNELS":
                count = int(number(i + 1))
                channels = [c.lower() for c in tokens[i + 2: i + 2 + count]]
                if len(channels) != count or any(c not in _CHANNELS for c in channels):
                    raise UserError(path, f"bad CHANNELS line for joint {joints[stack[-1]].name!r}")
                joint = joints[stack[-1]]
                joint.channels, joint.first_channel = channels, channel_count
                channel_count += count
                i += 2 + count
            else:
                raise UserError(path, f"unexpected {tokens[i]!r} in HIERARCHY")
    except IndexError:
        raise UserError(path, "HIERARCHY ends early") from None
    if stack or not joints:
        raise UserError(path, "HIERARCHY is incomplete (unbalanced braces or no joints)")
    return joints, end_sites


def _chain_offset(joints: list[_Joint], index: int) -> np.ndarray:
    total = np.zeros(3)
    while index > 0:
        total += joints[index].offset
        index = joints[index].parent
    return total


def _parse_motion(body: str, n_channels: int, path: Path) -> tuple[int, float, np.ndarray]:
    lines = body.strip().splitlines()
    try:
        frames_key, frames_value = lines[0].split(":")
        time_key, time_value = lines[1].split(":")
        if frames_key.strip().lower() != "frames" or time_key.strip().lower() != "frame time":
            raise ValueError
        frame_count, frame_time = int(frames_value), float(time_value)
    except (IndexError, ValueError):
        raise UserError(path, "MOTION section must start with 'Frames: N' and 'Frame Time: SECONDS'") from None
    if frame_count <= 0:
        raise UserError(path, "motion has zero frames")
    if not np.isfinite(frame_time) or frame_time <= 0:
        raise UserError(path, f"Frame Time must be a positive number of seconds, got {frame_time}")
    try:
        values = np.array(" ".join(lines[2:]).split(), dtype=np.float64)
    except ValueError:
        raise UserError(path, "non-numeric value in the MOTION data") from None
    if values.size != frame_count * n_channels:
        raise UserError(path, f"MOTION data has {values.size} numbers; {frame_count} frames x "
                              f"{n_channels} channels need {frame_count * n_channels}")
    if not np.all(np.isfinite(values)):
        raise UserError(path, "MOTION data contains NaN or inf")
    return frame_count, frame_time, values.reshape(frame_count, n_channels)


def _unit_scale(joints: list[_Joint], end_sites: list[np.ndarray], units: str | None, path: Path) -> float:
    if units is not None:
        if units not in UNITS:
            raise UserError("units", f"unknown unit {units!r}; choose one of {', '.join(UNITS)}")
        return UNITS[units]
    points = np.array([_chain_offset(joints, i) for i in range(len(joints))] + end_sites)
    height = float(np.ptp(points[:, 1])) if len(points) > 1 else 0.0
    if height == 0.0:
        raise UserError(path, "cannot guess the units of a flat skeleton; pass units")
    for limit, unit in ((3.0, "m"), (100.0, "inch"), (300.0, "cm")):
        if height < limit:
            return UNITS[unit]
    return UNITS["mm"]


def _known_skeleton(names: list[str], parents: np.ndarray) -> tuple[str, list[int]]:
    """("smplh", order) when the file holds a known skeleton (order: file index of each of its
    joints, since BVH nesting lists joints depth-first); else ("bvh", file order)."""
    edges = {(n, names[p] if p >= 0 else None) for n, p in zip(names, parents)}
    for name, (known_names, known_parents) in SKELETONS.items():
        if len(known_names) == len(names) and edges == {
                (n, known_names[p] if p >= 0 else None) for n, p in zip(known_names, known_parents)}:
            return name, [names.index(n) for n in known_names]
    return "bvh", list(range(len(names)))


def write_bvh(motion: Motion, path: str | os.PathLike, force: bool = False) -> Path:
    """Write ``motion`` as BVH (metres, Y up, ZXY channels) atomically."""
    if motion.rest_offsets is None:
        raise UserError(path, "this motion has no rest skeleton; BVH needs joint offsets")
    local = axis_angle_to_matrix(motion.rotations)
    local[:, 0] = Y_UP_TO_Z_UP.T @ local[:, 0]
    euler = matrix_to_euler(local, _WRITE_ORDER)  # (T, J, 3)
    root_position = motion.root_translation @ Y_UP_TO_Z_UP  # world Z up -> file Y up
    children = [[c for c in range(motion.n_joints) if motion.parents[c] == j] for j in range(motion.n_joints)]
    channel_names = " ".join(f"{a}rotation" for a in _WRITE_ORDER)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {motion.joint_names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {_fmt(motion.rest_offsets[j])}")
        lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {channel_names}" if j == 0
                     else f"{pad}  CHANNELS 3 {channel_names}")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            tip = 0.5 * motion.rest_offsets[j] if j else np.array([0.0, 0.1, 0.0])
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_fmt(tip)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    order = _depth_first(children)
    lines += ["MOTION", f"Frames: {motion.n_frames}", f"Frame Time: {1.0 / motion.fps:.10f}"]
    for t in range(motion.n_frames):
        lines.append(" ".join([_fmt(root_position[t])] + [_fmt(euler[t, j]) for j in order]))
    with atomic_path(path, force) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


def _depth_first(children: list[list[int]]) -> list[int]:
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in np.asarray(values, dtype=np.float64))
