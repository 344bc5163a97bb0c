"""Pose perturbation (the paper's ablation; not in the authors' code): the same motion with seeded
joint-rotation noise, to render a second condition pass that training uses in place of the exact
one with probability ``pose_perturbation``, so the model tolerates the errors of a fitter's poses.

Every joint but the root (whose rotation places the body in the world) gets, per frame, a rotation
about a random axis by a Gaussian angle of ``degrees`` standard deviation per axis-angle component,
composed in its parent's frame (choice: independent per frame, like a fitter's jitter).

    python -m diffusion.methods.make_your_anchor.perturb walk.npz walk_perturbed.npz --degrees 5 --seed 1
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np


def perturb(motion, degrees: float = 5.0, seed: int = 0):
    """A copy of ``motion`` with seeded rotation noise on every non-root joint."""
    from motion.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, np.radians(degrees), motion.rotations.shape)
    noise[:, 0] = 0.0
    rotations = matrix_to_axis_angle(axis_angle_to_matrix(noise) @ axis_angle_to_matrix(motion.rotations))
    return dataclasses.replace(motion, rotations=rotations)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from motion.errors import UserError
    from motion.io import read_motion, write_motion

    parser = argparse.ArgumentParser(prog="python -m diffusion.methods.make_your_anchor.perturb",
                                     description="a motion file with seeded joint-rotation noise")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--degrees", type=float, default=5.0, help="noise standard deviation per axis (degrees)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        if not 0 <= args.degrees <= 90:
            raise UserError("--degrees", f"must be in 0..90, got {args.degrees}")
        write_motion(perturb(read_motion(args.input), args.degrees, args.seed), args.output, force=args.force)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
