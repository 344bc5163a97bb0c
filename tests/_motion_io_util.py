"""Helpers for the motion io/ops/ik tests: small synthetic clips and independent FK."""

from __future__ import annotations

import numpy as np

from motion.motion import Motion
from motion.reference_skeleton import reference_offsets
from motion.skeletons import skeleton


def random_motion(name: str = "smplh", frames: int = 24, fps: float = 30.0, seed: int = 0,
                  scale: float = 0.4) -> Motion:
    """A smooth random clip on a named skeleton with the reference rest offsets."""
    rng = np.random.default_rng(seed)
    names, parents = skeleton(name)
    t = np.linspace(0, 1, frames)[:, None, None]
    a, b = rng.normal(size=(2, 1, len(names), 3)) * scale
    rotations = a + (b - a) * t + 0.1 * np.sin(6 * t + rng.normal(size=(1, len(names), 3)))
    rotations[:, 0] += [np.pi / 2, 0.0, 0.0]  # stand up in the Z-up world
    root = np.cumsum(rng.normal(size=(frames, 3)) * 0.01, axis=0) + [0.3, -0.2, 0.9]
    return Motion(name, names, parents, fps, rotations, root, reference_offsets(name))


def same_pose(a: Motion, b: Motion, atol: float = 1e-6) -> bool:
    """Forward kinematics agrees (rotation vectors themselves may differ by 2*pi wraps)."""
    return np.allclose(a.joint_positions(), b.joint_positions(), atol=atol)
