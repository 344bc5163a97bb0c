"""Warping error, temporal L1 and adjacent-frame differences on synthetic motion with exact flow."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion.evaluation import temporal_metrics as tm

H, W = 12, 16


def shifted(frame: np.ndarray, k: int, axis: int, fill: np.ndarray) -> np.ndarray:
    """Content moved by +k pixels along ``axis`` (right / down); uncovered rows/columns from ``fill``."""
    out = fill.copy()
    if axis == 1:
        out[:, k:] = frame[:, :W - k]
    else:
        out[k:] = frame[:H - k]
    return out


@pytest.mark.parametrize("axis", [0, 1])
def test_shift_with_exact_flow_has_zero_error_and_excludes_border(axis):
    rng = np.random.default_rng(0)
    k = 3
    f0 = rng.random((H, W, 3))
    f1 = shifted(f0, k, axis, rng.random((H, W, 3)))
    flow = np.zeros((H, W, 2))
    flow[..., 0 if axis == 1 else 1] = k                  # x right = channel 0, y down = channel 1
    depth = np.full((H, W), 2.0)
    valid = tm.valid_mask(flow, depth, depth)
    expected = np.ones((H, W), bool)
    if axis == 1:
        expected[:, W - k:] = False                       # these points leave the frame
    else:
        expected[H - k:] = False
    np.testing.assert_array_equal(valid, expected)
    assert tm.warping_error(f0, f1, tm.BackwardWarp(flow), valid) == pytest.approx(0.0, abs=1e-24)
    assert tm.warping_error(f0, f1, tm.BackwardWarp(np.zeros_like(flow)), tm.valid_mask(np.zeros_like(flow), depth, depth)) > 0.01


@pytest.mark.parametrize("flow_x, expected", [(4.0, 1.0), (3.5, 0.25), (2.0, 1.0)])
def test_wrong_flow_on_a_ramp_gives_known_error(flow_x, expected):
    a = 0.02
    ramp = a * np.tile(np.arange(W, dtype=float), (H, 1))   # f0(x) = a x
    f1 = a * (np.arange(W) - 3.0)[None, :].repeat(H, 0)     # moved right by 3: f1(x) = a (x - 3)
    flow = np.zeros((H, W, 2))
    flow[..., 0] = flow_x
    depth = np.ones((H, W))
    valid = tm.valid_mask(flow, depth, depth)
    # f1(x + u) - f0(x) = a (u - 3) everywhere inside the frame (bilinear is exact on a ramp)
    assert tm.warping_error(ramp, f1, tm.BackwardWarp(flow), valid) == pytest.approx(expected * a * a, rel=1e-9)
    assert valid.sum() == H * (W - int(np.ceil(flow_x)))


def test_depth_test_marks_points_hidden_in_next_frame():
    depth0 = np.full((H, W), np.inf)                      # empty background at infinity
    depth0[:, :8] = 10.0                                  # a wall on the left
    depth1 = depth0.copy()
    depth0[4:8, 2:6] = 2.0                                # a box at columns 2..5 in frame t
    depth1[4:8, 5:9] = 2.0                                # ... at columns 5..8 in frame t+1
    flow = np.zeros((H, W, 2))
    flow[4:8, 2:6, 0] = 3.0
    valid = tm.valid_mask(flow, depth0, depth1)
    expected = np.ones((H, W), bool)
    expected[4:8, 6:9] = False                            # wall (6, 7) and sky (8) now behind the box
    np.testing.assert_array_equal(valid, expected)
    # a point receding by more than the tolerance counts as not found (1.06 > 1.05)
    assert not tm.valid_mask(np.zeros((1, 1, 2)), np.ones((1, 1)), np.full((1, 1), 1.06))[0, 0]
    assert tm.valid_mask(np.zeros((1, 1, 2)), np.ones((1, 1)), np.full((1, 1), 1.04))[0, 0]
    # render/meta.py marks empty pixels with depth >= 1e9: empty agrees with empty only
    empty = tm.valid_mask(np.zeros((1, 3, 2)), np.array([[1e10, 1e10, 2.0]]), np.array([[2e9, 2.0, 1e10]]))
    np.testing.assert_array_equal(empty, [[True, False, False]])


def test_temporal_l1_measures_flicker_the_ground_truth_lacks():
    rng = np.random.default_rng(1)
    g0 = rng.random((H, W, 3))
    g1 = shifted(g0, 2, 1, rng.random((H, W, 3))) * 0.9  # the true video also darkens
    flow = np.zeros((H, W, 2))
    flow[..., 0] = 2
    valid = tm.valid_mask(flow, np.ones((H, W)), np.ones((H, W)))
    warp = tm.BackwardWarp(flow)
    assert tm.temporal_l1(g0 + 0.1, g1 + 0.1, g0, g1, warp, valid) == pytest.approx(0.0, abs=1e-12)
    assert tm.temporal_l1(g0, g1 + 0.05, g0, g1, warp, valid) == pytest.approx(0.05, abs=1e-12)
    assert tm.warping_error(g0, g1, warp, valid) > 0    # the darkening is real change, not flicker


def test_adjacent_differences_on_0_255_scale():
    f = np.full((4, 5, 3), 100 / 255)
    l1, mse = tm.adjacent_differences(f, f + 10 / 255)
    assert l1 == pytest.approx(10.0) and mse == pytest.approx(100.0)


def test_non_finite_flow_is_invalid_not_a_crash():
    flow = np.zeros((H, W, 2))
    flow[2, 3] = np.nan
    depth = np.ones((H, W))
    valid = tm.valid_mask(flow, depth, depth)
    assert not valid[2, 3] and valid.sum() == H * W - 1
    f = np.random.default_rng(2).random((H, W))
    assert tm.warping_error(f, f, tm.BackwardWarp(flow), valid) == 0.0
