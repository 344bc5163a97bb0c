"""OpenPose maps vs ControlNet's annotator drawing (controlnet_aux 0.0.10 open_pose / dwpose util).

The reference below re-states the annotator's drawing with the cv2 calls it makes, on its inputs
(normalised coordinates, ``Keypoint`` lists or ``candidate``/``subset`` arrays, -1 for missing hand
and face points); ``render.openpose`` takes pixel keypoints and must give identical pixels with
both of its backends. When controlnet_aux itself is importable, it is compared directly too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from render import openpose  # noqa: E402
from render.openpose import COLOURS, draw_pose, to_annotator  # noqa: E402

_PAIRS = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12],
          [12, 13], [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18]]
_HAND = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [0, 9], [9, 10], [10, 11],
         [11, 12], [0, 13], [13, 14], [14, 15], [15, 16], [0, 17], [17, 18], [18, 19], [19, 20]]


def _hsv(h):
    """matplotlib.colors.hsv_to_rgb for s = v = 1 (checked against matplotlib below)."""
    i = int(h * 6.0)
    f = h * 6.0 - i
    return np.array([(1, f, 0), (1 - f, 1, 0), (0, 1, f), (0, 1 - f, 1), (f, 0, 1), (1, 0, 1 - f)][i % 6],
                    dtype=np.float64)


def _limb(canvas, p, q, colour):
    W, H = canvas.shape[1], canvas.shape[0]
    Y = np.array([p[0], q[0]]) * float(W)
    X = np.array([p[1], q[1]]) * float(H)
    length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
    angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
    poly = cv2.ellipse2Poly((int(np.mean(Y)), int(np.mean(X))), (int(length / 2), 4), int(angle), 0, 360, 1)
    cv2.fillConvexPoly(canvas, poly, colour)


def _hand(canvas, pts):
    H, W = canvas.shape[:2]
    for k, (a, b) in enumerate(_HAND):
        x1, y1, x2, y2 = int(pts[a][0] * W), int(pts[a][1] * H), int(pts[b][0] * W), int(pts[b][1] * H)
        if min(x1, y1, x2, y2) > 0.01:
            cv2.line(canvas, (x1, y1), (x2, y2), _hsv(k / 20.0) * 255, thickness=2)
    for x, y in pts:
        x, y = int(x * W), int(y * H)
        if x > 0.01 and y > 0.01:
            cv2.circle(canvas, (x, y), 4, (0, 0, 255), thickness=-1)


def _face(canvas, pts):
    H, W = canvas.shape[:2]
    for x, y in pts:
        x, y = int(x * W), int(y * H)
        if x > 0.01 and y > 0.01:
            cv2.circle(canvas, (x, y), 3, (255, 255, 255), thickness=-1)


def _normalised(a, W, H):
    """Annotator input: normalised coordinates, -1 where a point is missing."""
    n = to_annotator(a[:, :2], W, H)
    n[a[:, 2] <= 0] = -1.0
    return n


def reference_openpose(people, H, W):
    """OpenposeDetector.draw_poses: person by person (limbs at 0.6, joints, hands, face)."""
    canvas = np.zeros((H, W, 3), np.uint8)
    for p in people:
        body = _normalised(p["body"], W, H)
        ok = p["body"][:, 2] > 0
        for (a, b), colour in zip(_PAIRS, COLOURS):
            if ok[a - 1] and ok[b - 1]:
                _limb(canvas, body[a - 1], body[b - 1], [int(float(c) * 0.6) for c in colour])
        for j, colour in enumerate(COLOURS):
            if ok[j]:
                cv2.circle(canvas, (int(body[j][0] * W), int(body[j][1] * H)), 4, colour, thickness=-1)
        _hand(canvas, _normalised(p["hand_left"], W, H))
        _hand(canvas, _normalised(p["hand_right"], W, H))
        _face(canvas, _normalised(p["face"], W, H))
    return canvas


def reference_dwpose(people, H, W):
    """DWposeDetector's draw_pose: candidate/subset limb-major, whole canvas * 0.6, joints, hands, faces."""
    candidate = np.concatenate([_normalised(p["body"], W, H) for p in people])
    subset = np.array([[18 * i + j if p["body"][j, 2] > 0 else -1 for j in range(18)]
                       for i, p in enumerate(people)])
    canvas = np.zeros((H, W, 3), np.uint8)
    for i, (a, b) in enumerate(_PAIRS):
        for n in range(len(subset)):
            index = subset[n][np.array([a, b]) - 1]
            if -1 not in index:
                _limb(canvas, candidate[index[0]], candidate[index[1]], COLOURS[i])
    canvas = (canvas * 0.6).astype(np.uint8)
    for i in range(18):
        for n in range(len(subset)):
            if subset[n][i] != -1:
                x, y = candidate[subset[n][i]]
                cv2.circle(canvas, (int(x * W), int(y * H)), 4, COLOURS[i], thickness=-1)
    for side in ("hand_left", "hand_right"):
        for p in people:
            _hand(canvas, _normalised(p[side], W, H))
    for p in people:
        _face(canvas, _normalised(p["face"], W, H))
    return canvas


def random_people(rng, W, H, n):
    """Skeleton-like clouds, partly off-canvas, ~15% invisible points."""
    people = []
    for _ in range(n):
        centre = rng.uniform([-0.1 * W, -0.1 * H], [1.1 * W, 1.1 * H])
        size = rng.uniform(0.05, 0.5) * min(W, H)

        def points(k, spread):
            xy = centre + rng.normal(size=(k, 2)) * spread
            return np.concatenate([xy, (rng.random((k, 1)) > 0.15)], 1)

        people.append(dict(body=points(18, size), hand_left=points(21, size / 4),
                           hand_right=points(21, size / 4), face=points(68, size / 6)))
    return people


SIZES = [(512, 512), (640, 360), (333, 517), (64, 48)]


@pytest.mark.parametrize("order,reference", [("openpose", reference_openpose), ("dwpose", reference_dwpose)])
def test_matches_annotator_exactly(order, reference):
    rng = np.random.default_rng(7)
    for trial in range(12):
        W, H = SIZES[trial % len(SIZES)]
        people = random_people(rng, W, H, 1 + trial % 3)
        expected = reference(people, H, W)
        assert expected.any()
        for backend in ("cv2", "numpy"):
            got = draw_pose(H, W, people, order=order, backend=backend)
            assert np.array_equal(got, expected), (order, backend, W, H, int(np.any(got != expected, -1).sum()))


def test_single_person_orders_agree_and_multi_person_differs():
    rng = np.random.default_rng(3)
    one = random_people(rng, 256, 256, 1)
    assert np.array_equal(draw_pose(256, 256, one, order="openpose"), draw_pose(256, 256, one, order="dwpose"))
    many = [dict(body=np.array([[100 + 3 * j, 60 + 8 * j, 1] for j in range(18)], float)) for _ in range(1)]
    many.append(dict(body=many[0]["body"] + [6, 0, 0]))
    assert not np.array_equal(draw_pose(256, 256, many, order="openpose"), draw_pose(256, 256, many, order="dwpose"))


def test_limb_and_joint_colours_and_visibility():
    body = np.zeros((18, 3))
    body[1] = [100.5, 50.5, 1]     # neck
    body[2] = [100.5, 150.5, 1]    # right shoulder: limb 0 (neck -> right shoulder), vertical
    img = draw_pose(200, 200, [dict(body=body)])
    assert tuple(img[100, 100]) == (153, 0, 0)                  # limb 0 at 60% of (255, 0, 0)
    assert tuple(img[50, 100]) == COLOURS[1]                   # neck joint in full colour
    assert tuple(img[150, 100]) == COLOURS[2]
    assert tuple(img[100, 105]) == (0, 0, 0)                   # half-width 4 around x = 100
    assert tuple(img[100, 104]) == (153, 0, 0)
    body[2, 2] = 0                                             # invisible: its joint and the limb vanish
    img = draw_pose(200, 200, [dict(body=body)])
    assert not img[60:, :].any() and tuple(img[50, 100]) == COLOURS[1]


def test_numpy_rasterisers_match_opencv():
    rng = np.random.default_rng(11)
    for _ in range(300):
        c = tuple(int(v) for v in rng.integers(-50, 300, 2))
        axes = (int(rng.integers(0, 200)), int(rng.integers(0, 12)))
        angle = int(rng.integers(-400, 400))
        assert np.array_equal(openpose.ellipse2poly(c, axes, angle), cv2.ellipse2Poly(c, axes, angle, 0, 360, 1))
    for _ in range(60):
        a = np.zeros((90, 120, 3), np.uint8)
        b = a.copy()
        painter = openpose._NumpyPainter(b)
        poly = cv2.ellipse2Poly(tuple(int(v) for v in rng.integers(-30, 150, 2)),
                                (int(rng.integers(0, 80)), 4), int(rng.integers(0, 360)), 0, 360, 1)
        cv2.fillConvexPoly(a, poly, (10, 20, 30))
        painter.fill_convex_poly(poly, (10, 20, 30))
        p, q = (tuple(int(v) for v in rng.integers(-20, 140, 2)) for _ in range(2))
        cv2.line(a, p, q, (200, 1, 2), thickness=2)
        painter.line(p, q, (200, 1, 2), 2)
        r = int(rng.integers(0, 9))
        cv2.circle(a, p, r, (7, 7, 7), thickness=-1)
        painter.circle(p, r, (7, 7, 7))
        assert np.array_equal(a, b)


def test_hand_colours_are_matplotlib_hsv():
    colors = pytest.importorskip("matplotlib.colors")
    for k, colour in enumerate(openpose.HAND_COLOURS):
        assert np.array_equal(colour, colors.hsv_to_rgb([k / 20.0, 1.0, 1.0]) * 255)
        assert np.array_equal(colour, _hsv(k / 20.0) * 255)


def test_against_controlnet_aux_when_installed():
    util = pytest.importorskip("controlnet_aux.open_pose.util")
    from controlnet_aux.open_pose.body import Keypoint

    rng = np.random.default_rng(5)
    W, H = 400, 300
    people = random_people(rng, W, H, 2)
    canvas = np.zeros((H, W, 3), np.uint8)
    for p in people:
        kp = [Keypoint(*xy) if v else None for xy, v in zip(_normalised(p["body"], W, H), p["body"][:, 2] > 0)]
        canvas = util.draw_bodypose(canvas, kp)
        for side in ("hand_left", "hand_right"):
            canvas = util.draw_handpose(canvas, [Keypoint(*xy) for xy in _normalised(p[side], W, H)])
        canvas = util.draw_facepose(canvas, [Keypoint(*xy) for xy in _normalised(p["face"], W, H)])
    assert np.array_equal(draw_pose(H, W, people), canvas)
    assert np.array_equal(draw_pose(H, W, people, backend="numpy"), canvas)


def test_bad_arguments():
    with pytest.raises(ValueError):
        draw_pose(10, 10, [], order="v1")
    with pytest.raises(ValueError):
        draw_pose(10, 10, [], parts=["feet"])
    with pytest.raises(ValueError):
        draw_pose(10, 10, [dict(body=np.zeros(18))])


def test_people_from_meta_frame():
    from render import meta as M

    body = np.column_stack([np.linspace(20, 100, 18), np.linspace(10, 90, 18), np.ones(18)])
    body[5] = [np.nan, np.nan, 0]                               # behind the camera: null in the JSON
    hand = np.column_stack([np.linspace(30, 50, 21), np.full(21, 60.0), np.ones(21)])
    frame = M.frame_entry(0, 0.0, np.eye(3), np.eye(4), np.eye(4), 0, {
        "a": M.actor_frame(np.zeros((2, 3)), {"openpose18": body, "hand_left21": hand}),
        "b": M.actor_frame(np.zeros((2, 3)), {"openpose18": body + [10, 0, 0]})})
    import json
    frame = json.loads(json.dumps(M.jsonable(frame)))          # as read back from meta.json
    people = openpose.people_from_frame(frame)
    assert [sorted(p) for p in people] == [["body", "hand_left"], ["body"]]
    expected = draw_pose(128, 128, [dict(body=body, hand_left=hand), dict(body=body + [10, 0, 0])])
    assert np.array_equal(draw_pose(128, 128, people), expected)
