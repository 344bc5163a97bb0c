"""The numpy rotation helpers against roma (torch), and the safe-output helpers."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import roma
import torch

from motion.cli import build_parser, main
from motion.errors import UserError
from motion.fileio import atomic_path, check_writable
from motion.rotations import (Y_UP_TO_Z_UP, axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle,
                              matrix_to_euler, matrix_to_quat, quat_slerp, quat_to_matrix, rotation_between)

RNG = np.random.default_rng(7)
AA = RNG.normal(size=(500, 3))


def test_axis_angle_matrix_agree_with_roma_and_round_trip():
    ours = axis_angle_to_matrix(AA)
    np.testing.assert_allclose(ours, roma.rotvec_to_rotmat(torch.from_numpy(AA)).numpy(), atol=1e-12)
    np.testing.assert_allclose(axis_angle_to_matrix(matrix_to_axis_angle(ours)), ours, atol=1e-12)
    np.testing.assert_allclose(quat_to_matrix(matrix_to_quat(ours)), ours, atol=1e-12)
    tiny = np.array([[1e-10, 0.0, 0.0]])
    np.testing.assert_allclose(matrix_to_axis_angle(axis_angle_to_matrix(tiny)), tiny, atol=1e-15)


@pytest.mark.parametrize("order", ["XYZ", "ZXY", "ZYX", "YXZ", "XZY", "YZX"])
def test_euler_round_trip(order):
    m = axis_angle_to_matrix(AA)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(m, order), order), m, atol=1e-10)


def test_slerp_matches_roma_and_ends():
    q = matrix_to_quat(axis_angle_to_matrix(AA))
    a, b = q[:250], q[250:]
    t = RNG.uniform(size=250)
    # roma quaternions are (x, y, z, w)
    ra, rb = (torch.from_numpy(x[:, [1, 2, 3, 0]]) for x in (a, b))
    steps = torch.from_numpy(t)
    ref = torch.stack([roma.utils.unitquat_slerp(ra[i:i + 1], rb[i:i + 1], steps[i:i + 1], shortest_arc=True)[0, 0]
                       for i in range(len(t))])
    np.testing.assert_allclose(quat_to_matrix(quat_slerp(a, b, t)),
                               roma.unitquat_to_rotmat(ref).numpy(), atol=1e-9)
    np.testing.assert_allclose(quat_to_matrix(quat_slerp(a, b, 0.0)), quat_to_matrix(a), atol=1e-12)


def test_rotation_between_and_frame_map():
    u, v = RNG.normal(size=(100, 3)), RNG.normal(size=(100, 3))
    r = rotation_between(u, v)
    mapped = np.einsum("nij,nj->ni", r, u)
    np.testing.assert_allclose(mapped / np.linalg.norm(mapped, axis=1, keepdims=True),
                               v / np.linalg.norm(v, axis=1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(Y_UP_TO_Z_UP @ [0, 1, 0], [0, 0, 1])   # up stays up
    np.testing.assert_allclose(Y_UP_TO_Z_UP @ [0, 0, 1], [0, -1, 0])  # SMPL front (+Z) -> Blender front (-Y)


def test_atomic_path_keeps_old_file_on_failure_and_sets_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(UserError, match="--force"):
        check_writable(target)


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    groups = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0].choices
    assert {"motion", "avatar", "render", "generate", "train", "eval", "bench", "demo", "addon"} <= set(groups)
    for name in groups:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
    assert "usage" in capsys.readouterr().out
