"""OpenPose condition maps drawn exactly as ControlNet's OpenPose annotator draws them.

Reference: controlnet_aux 0.0.10 (the ControlNet 1.1 annotator), ``open_pose.util.draw_bodypose``,
``draw_handpose``, ``draw_facepose`` and the two ways its detectors lay people onto one canvas:

- ``order="openpose"`` (``OpenposeDetector`` / ``draw_poses``): person by person, each person's body
  limbs, body joints, left hand, right hand, face.
- ``order="dwpose"`` (``DWposeDetector`` / ``dwpose.draw_pose``): limb by limb over all people (limb
  k of every person, then limb k + 1), then joint by joint over all people, then all left hands, all
  right hands, all faces.

The two agree for one person. What the annotator draws, on black, RGB channel order:

- body: 17 limbs (OpenPose pairs below, in the annotator's order), each a convex polygon from
  ``cv2.ellipse2Poly(centre, (int(length / 2), 4), int(angle_deg), 0, 360, 1)`` filled with
  ``int(colour * 0.6)`` of the limb's entry in the 18-colour table (each limb overwrites what is
  under it; no blending), then 18 joints as filled circles of radius 4 in full colour;
- hands: 20 edges as ``cv2.line`` thickness 2 in HSV rainbow colours (hue = edge / 20, S = V = 1,
  matplotlib's ``hsv_to_rgb`` scaled by 255, rounded by OpenCV), then 21 points as filled circles of
  radius 4 in (0, 0, 255); an edge or point whose integer pixel x or y is <= 0 is skipped (the
  annotator's ``> eps`` test on truncated pixel coordinates);
- face: every point a filled white circle of radius 3, same ``> eps`` test.

The older ControlNet 1.0 annotator differs (joints first, then each limb drawn on a copy and blended
``addWeighted(canvas, 0.4, copy, 0.6)``); it is not reproduced: ControlNet 1.1 models and the DWPose
detector use the drawing above.

Coordinates. Our keypoints are pixels in the ``render.meta`` convention (centre of pixel (i, j) at
(j + 0.5, i + 0.5)). The annotator receives coordinates normalised by the detector, ``x / W`` with x
an integer pixel index (pixel centres on integers), and draws at ``int(x_norm * W)``. So a keypoint
(x, y) is handed to the annotator as ``((x - 0.5) / W, (y - 0.5) / H)`` (:func:`to_annotator`); this
module does exactly that and then the annotator's arithmetic, so ``draw_pose`` equals the annotator
fed with those normalised coordinates, pixel for pixel.

Backends. With OpenCV importable the drawing uses the very same cv2 calls. Without it (stock
Blender) a numpy port of OpenCV 4's integer rasterisers (``ellipse2Poly``'s sine table and rounding,
``FillConvexPoly`` with its 8-connected outline, the midpoint ``Circle``, ``ThickLine`` with its
fixed-point polygon and round caps) produces the same pixels; the tests check both for equality.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

try:  # OpenCV when present (venv); the numpy port below otherwise (stock Blender)
    import cv2
except ImportError:  # pragma: no cover - exercised by forcing backend="numpy"
    cv2 = None

# 1-based OpenPose pairs as the annotator lists them (neck=2, ...), converted to 0-based.
LIMBS = [(a - 1, b - 1) for a, b in (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
    (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18))]
COLOURS = [
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85)]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
              (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
STICK_HALF_WIDTH = 4
JOINT_RADIUS = 4
HAND_POINT_RADIUS = 4
HAND_POINT_COLOUR = (0, 0, 255)
HAND_LINE_THICKNESS = 2
FACE_RADIUS = 3
FACE_COLOUR = (255, 255, 255)
PARTS = ("body", "hand_left", "hand_right", "face")
_EPS = 0.01


def _hsv_rainbow(n: int) -> list[np.ndarray]:
    """matplotlib ``hsv_to_rgb([i / n, 1, 1]) * 255`` for i < n, same float arithmetic."""
    out = []
    for i in range(n):
        h6 = (i / float(n)) * 6.0
        k = int(h6)
        f = h6 - k
        v, p, q, t = 1.0, 0.0, 1.0 - f, 1.0 - (1.0 - f)
        rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][k % 6]
        out.append(np.array(rgb) * 255)
    return out


HAND_COLOURS = _hsv_rainbow(len(HAND_EDGES))


def to_annotator(points_px: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel keypoints (meta convention) -> the annotator's normalised coordinates."""
    p = np.asarray(points_px, dtype=np.float64)
    return np.stack([(p[..., 0] - 0.5) / float(width), (p[..., 1] - 0.5) / float(height)], -1)


# ----------------------------------------------------------------------------------------------
# numpy port of OpenCV 4's integer rasterisers (modules/imgproc/src/drawing.cpp), LINE_8 only

_SHIFT = 16
_ONE = 1 << _SHIFT
# OpenCV's SinTable: sin of whole degrees 0..450 written to 7 decimals, stored as float32.
_SIN_TABLE = np.round(np.sin(np.deg2rad(np.arange(451))), 7).astype(np.float32).astype(np.float64)


def _cround(v: float) -> int:
    """cvRound: nearest integer, ties to even (lrint in the default rounding mode)."""
    return int(round(v))


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ellipse2poly(center: tuple[int, int], axes: tuple[int, int], angle: int, arc_start: int = 0,
                 arc_end: int = 360, delta: int = 1) -> np.ndarray:
    """``cv2.ellipse2Poly`` in numpy: integer polygon (N, 2) of an elliptic arc."""
    while angle < 0:
        angle += 360
    while angle > 360:
        angle -= 360
    if arc_start > arc_end:
        arc_start, arc_end = arc_end, arc_start
    while arc_start < 0:
        arc_start, arc_end = arc_start + 360, arc_end + 360
    while arc_end > 360:
        arc_start, arc_end = arc_start - 360, arc_end - 360
    if arc_end - arc_start > 360:
        arc_start, arc_end = 0, 360
    a = angle + (360 if angle < 0 else 0)
    alpha, beta = _SIN_TABLE[450 - a], _SIN_TABLE[a]                 # cos, sin (float32 values)
    angles = np.minimum(np.arange(arc_start, arc_end + delta, delta), arc_end)
    angles = np.where(angles < 0, angles + 360, angles)
    x = axes[0] * _SIN_TABLE[450 - angles]
    y = axes[1] * _SIN_TABLE[angles]
    px = np.rint(float(center[0]) + x * alpha - y * beta).astype(np.int64)
    py = np.rint(float(center[1]) + x * beta + y * alpha).astype(np.int64)
    pts = np.stack([px, py], 1)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(pts[1:] != pts[:-1], axis=1)
    pts = pts[keep]
    if len(pts) == 1:
        pts = np.array([center, center], dtype=np.int64)
    return pts.astype(np.int32)


class _NumpyPainter:
    """The few OpenCV drawing calls the annotator makes, on an (H, W, 3) uint8 array."""

    def __init__(self, canvas: np.ndarray):
        self.img = canvas
        self.h, self.w = canvas.shape[:2]

    ellipse2poly = staticmethod(ellipse2poly)

    def _put(self, x: int, y: int, colour) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            self.img[y, x] = colour

    def _hline(self, y: int, x1: int, x2: int, colour) -> None:
        """A span already clipped by the caller (OpenCV's ICV_HLINE)."""
        if x2 >= x1:
            self.img[y, x1:x2 + 1] = colour

    def _clip_line(self, w: int, h: int, x1: int, y1: int, x2: int, y2: int):
        right, bottom = w - 1, h - 1
        c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8
        c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8
        if (c1 & c2) == 0 and (c1 | c2) != 0:
            if c1 & 12:
                a = 0 if c1 < 8 else bottom
                x1 += _cdiv((a - y1) * (x2 - x1), y2 - y1)
                y1 = a
                c1 = (x1 < 0) + (x1 > right) * 2
            if c2 & 12:
                a = 0 if c2 < 8 else bottom
                x2 += _cdiv((a - y2) * (x2 - x1), y2 - y1)
                y2 = a
                c2 = (x2 < 0) + (x2 > right) * 2
            if (c1 & c2) == 0 and (c1 | c2) != 0:
                if c1:
                    a = 0 if c1 == 1 else right
                    y1 += _cdiv((a - x1) * (y2 - y1), x2 - x1)
                    x1, c1 = a, 0
                if c2:
                    a = 0 if c2 == 1 else right
                    y2 += _cdiv((a - x2) * (y2 - y1), x2 - x1)
                    x2, c2 = a, 0
        return (c1 | c2) == 0, x1, y1, x2, y2

    def _line8(self, x1: int, y1: int, x2: int, y2: int, colour) -> None:
        """OpenCV ``Line``: 8-connected Bresenham via LineIterator (left to right)."""
        if not (0 <= x1 < self.w and 0 <= x2 < self.w and 0 <= y1 < self.h and 0 <= y2 < self.h):
            inside, x1, y1, x2, y2 = self._clip_line(self.w, self.h, x1, y1, x2, y2)
            if not inside:
                return
        dx, dy = x2 - x1, y2 - y1
        if dx < 0:
            dx, dy, x1, y1 = -dx, -dy, x2, y2
        sy = 1
        if dy < 0:
            dy, sy = -dy, -1
        vertical = dy > dx
        if vertical:
            dx, dy = dy, dx
        err = dx - 2 * dy
        x, y = x1, y1
        for _ in range(dx + 1):
            self.img[y, x] = colour
            minor = err < 0
            err += -2 * dy + (2 * dx if minor else 0)
            if vertical:
                y += sy
                x += 1 if minor else 0
            else:
                x += 1
                y += sy if minor else 0

    def _line2(self, p1: list[int], p2: list[int], colour) -> None:
        """OpenCV ``Line2``: the outline of a fixed-point (16-bit fraction) polygon."""
        inside, x1, y1, x2, y2 = self._clip_line(self.w << _SHIFT, self.h << _SHIFT, *p1, *p2)
        if not inside:
            return
        dx, dy = x2 - x1, y2 - y1
        ax, ay = abs(dx), abs(dy)
        if ax > ay:
            if dx < 0:
                dy = -dy
                x1, y1, x2, y2 = x2, y2, x1, y1
            x_step, y_step = _ONE, _cdiv(dy << _SHIFT, ax | 1)
            ecount = (x2 - x1) >> _SHIFT
        else:
            if dy < 0:
                dx = -dx
                x1, y1, x2, y2 = x2, y2, x1, y1
            x_step, y_step = _cdiv(dx << _SHIFT, ay | 1), _ONE
            ecount = (y2 - y1) >> _SHIFT
        x1 += _ONE >> 1
        y1 += _ONE >> 1
        self._put((x2 + (_ONE >> 1)) >> _SHIFT, (y2 + (_ONE >> 1)) >> _SHIFT, colour)
        if ax > ay:
            x1 >>= _SHIFT
            while ecount >= 0:
                self._put(x1, y1 >> _SHIFT, colour)
                x1 += 1
                y1 += y_step
                ecount -= 1
        else:
            y1 >>= _SHIFT
            while ecount >= 0:
                self._put(x1 >> _SHIFT, y1, colour)
                x1 += x_step
                y1 += 1
                ecount -= 1

    def fill_convex_poly(self, pts, colour, shift: int = 0) -> None:
        """OpenCV ``FillConvexPoly`` (LINE_8): outline lines, then the scanline fill."""
        v = [(int(x), int(y)) for x, y in pts]
        n = len(v)
        delta = (1 << shift) >> 1
        half = _ONE >> 1
        p0 = (v[-1][0] << (_SHIFT - shift), v[-1][1] << (_SHIFT - shift))
        xmin = xmax = v[0][0]
        ymin = ymax = v[0][1]
        imin = 0
        for i, (x, y) in enumerate(v):
            if y < ymin:
                ymin, imin = y, i
            ymax, xmax, xmin = max(ymax, y), max(xmax, x), min(xmin, x)
            p = (x << (_SHIFT - shift), y << (_SHIFT - shift))
            if shift == 0:
                self._line8(p0[0] >> _SHIFT, p0[1] >> _SHIFT, p[0] >> _SHIFT, p[1] >> _SHIFT, colour)
            else:
                self._line2(list(p0), list(p), colour)
            p0 = p
        xmin, xmax = (xmin + delta) >> shift, (xmax + delta) >> shift
        ymin, ymax = (ymin + delta) >> shift, (ymax + delta) >> shift
        if n < 3 or xmax < 0 or ymax < 0 or xmin >= self.w or ymin >= self.h:
            return
        ymax = min(ymax, self.h - 1)
        # per edge: [vertex index, step, x (16.16), dx, y end]
        edge = [[imin, 1, -_ONE, 0, ymin], [imin, n - 1, -_ONE, 0, ymin]]
        edges = n
        y = ymin
        while True:
            for e in edge:
                if y >= e[4]:
                    idx0, di = e[0], e[1]
                    idx = idx0 + di - (n if idx0 + di >= n else 0)
                    while True:
                        remaining, edges = edges, edges - 1
                        if remaining <= 0:
                            break
                        ty = (v[idx][1] + delta) >> shift
                        if ty > y:
                            xs = v[idx0][0] << (_SHIFT - shift)
                            xe = v[idx][0] << (_SHIFT - shift)
                            e[4] = ty
                            e[3] = _cdiv((xe - xs) * 2 + (ty - y), 2 * (ty - y))
                            e[2] = xs
                            e[0] = idx
                            break
                        idx0 = idx
                        idx += di
                        if idx >= n:
                            idx -= n
            if edges < 0:
                break
            if y >= 0:
                left, right = (1, 0) if edge[0][2] > edge[1][2] else (0, 1)
                xx1 = (edge[left][2] + half) >> _SHIFT
                xx2 = (edge[right][2] + half) >> _SHIFT
                if xx2 >= 0 and xx1 < self.w:
                    self._hline(y, max(xx1, 0), min(xx2, self.w - 1), colour)
            edge[0][2] += edge[0][3]
            edge[1][2] += edge[1][3]
            y += 1
            if y > ymax:
                break

    def circle(self, center: tuple[int, int], radius: int, colour) -> None:
        """OpenCV ``Circle`` filled (midpoint algorithm, horizontal spans)."""
        cx, cy = center
        err, dx, dy, plus, minus = 0, radius, 0, 1, 2 * radius - 1
        while dx >= dy:
            for yy, xa, xb in ((cy - dy, cx - dx, cx + dx), (cy + dy, cx - dx, cx + dx),
                               (cy - dx, cx - dy, cx + dy), (cy + dx, cx - dy, cx + dy)):
                if 0 <= yy < self.h and xa < self.w and xb >= 0:
                    self._hline(yy, max(xa, 0), min(xb, self.w - 1), colour)
            dy += 1
            err += plus
            plus += 2
            mask = 0 if err <= 0 else -1
            err -= minus & mask
            dx += mask
            minus -= mask & 2

    def line(self, p0: tuple[int, int], p1: tuple[int, int], colour, thickness: int) -> None:
        """OpenCV ``line`` with thickness > 1: fixed-point quad plus round caps (``ThickLine``)."""
        x0, y0 = p0[0] << _SHIFT, p0[1] << _SHIFT
        x1, y1 = p1[0] << _SHIFT, p1[1] << _SHIFT
        dx, dy = (x0 - x1) / _ONE, (y1 - y0) / _ONE
        r = dx * dx + dy * dy
        odd = thickness & 1
        th = thickness << (_SHIFT - 1)
        if abs(r) > np.finfo(np.float64).eps:
            r = (th + odd * _ONE * 0.5) / math.sqrt(r)
            ddx, ddy = _cround(dy * r), _cround(dx * r)
            quad = [(x0 + ddx, y0 + ddy), (x0 - ddx, y0 - ddy), (x1 - ddx, y1 - ddy), (x1 + ddx, y1 + ddy)]
            self.fill_convex_poly(quad, colour, shift=_SHIFT)
        cap = (th + (_ONE >> 1)) >> _SHIFT
        for cx, cy in ((x0, y0), (x1, y1)):
            self.circle(((cx + (_ONE >> 1)) >> _SHIFT, (cy + (_ONE >> 1)) >> _SHIFT), cap, colour)


class _Cv2Painter:
    """The same calls through OpenCV itself."""

    def __init__(self, canvas: np.ndarray):
        self.img = canvas

    @staticmethod
    def ellipse2poly(center, axes, angle, arc_start=0, arc_end=360, delta=1):
        return cv2.ellipse2Poly(tuple(center), tuple(axes), angle, arc_start, arc_end, delta)

    def fill_convex_poly(self, pts, colour) -> None:
        cv2.fillConvexPoly(self.img, pts, colour)

    def circle(self, center, radius, colour) -> None:
        cv2.circle(self.img, center, radius, colour, thickness=-1)

    def line(self, p0, p1, colour, thickness) -> None:
        cv2.line(self.img, p0, p1, colour, thickness=thickness)


def _cv_colour(colour) -> tuple[int, int, int]:
    """OpenCV's Scalar -> uint8 conversion (saturate_cast: round half to even, clamp)."""
    return tuple(min(255, max(0, _cround(float(c)))) for c in colour)


def _points(part, width: int, height: int) -> list[tuple[float, float] | None]:
    """(N, 3) pixel keypoints [x, y, visible] -> annotator-normalised (x, y), None where invisible."""
    if part is None:
        return []
    arr = np.asarray(part, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"keypoints must be (N, 2) or (N, 3), got shape {arr.shape}")
    norm = to_annotator(arr[:, :2], width, height)
    vis = arr[:, 2] > 0 if arr.shape[1] > 2 else np.ones(len(arr), bool)
    vis &= np.all(np.isfinite(arr[:, :2]), axis=1)
    return [(float(x), float(y)) if v else None for (x, y), v in zip(norm, vis)]


def _draw_limbs(painter, bodies, width: int, height: int) -> None:
    """Limb by limb, each limb for every body in turn (the annotator's loop order)."""
    for (a, b), colour in zip(LIMBS, COLOURS):
        for body in bodies:
            if a >= len(body) or b >= len(body) or body[a] is None or body[b] is None:
                continue
            Y = np.array([body[a][0], body[b][0]]) * float(width)
            X = np.array([body[a][1], body[b][1]]) * float(height)
            mX, mY = np.mean(X), np.mean(Y)
            length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
            angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
            polygon = painter.ellipse2poly((int(mY), int(mX)), (int(length / 2), STICK_HALF_WIDTH),
                                           int(angle), 0, 360, 1)
            painter.fill_convex_poly(polygon, [int(float(c) * 0.6) for c in colour])


def _draw_joints(painter, bodies, width: int, height: int) -> None:
    """Joint by joint, each joint for every body in turn."""
    for j, colour in enumerate(COLOURS):
        for body in bodies:
            if j < len(body) and body[j] is not None:
                point = body[j]
                painter.circle((int(point[0] * width), int(point[1] * height)), JOINT_RADIUS, colour)


def _draw_hand(painter, hand, width: int, height: int) -> None:
    for (a, b), colour in zip(HAND_EDGES, HAND_COLOURS):
        if a >= len(hand) or b >= len(hand) or hand[a] is None or hand[b] is None:
            continue
        x1, y1 = int(hand[a][0] * width), int(hand[a][1] * height)
        x2, y2 = int(hand[b][0] * width), int(hand[b][1] * height)
        if x1 > _EPS and y1 > _EPS and x2 > _EPS and y2 > _EPS:
            painter.line((x1, y1), (x2, y2), _cv_colour(colour), HAND_LINE_THICKNESS)
    for point in hand:
        if point is not None:
            x, y = int(point[0] * width), int(point[1] * height)
            if x > _EPS and y > _EPS:
                painter.circle((x, y), HAND_POINT_RADIUS, HAND_POINT_COLOUR)


def _draw_face(painter, face, width: int, height: int) -> None:
    for point in face:
        if point is not None:
            x, y = int(point[0] * width), int(point[1] * height)
            if x > _EPS and y > _EPS:
                painter.circle((x, y), FACE_RADIUS, FACE_COLOUR)


KEYPOINT_SET_PARTS = {"openpose18": "body", "hand_left21": "hand_left", "hand_right21": "hand_right",
                      "face68": "face"}


def people_from_frame(frame: Mapping) -> list[dict[str, np.ndarray]]:
    """``draw_pose`` people from a meta.json frame entry (each actor's ``keypoints2d`` sets), in
    actor order; null coordinates (points behind the camera) become NaN and are not drawn."""
    people = []
    for actor in frame.get("actors", {}).values():
        sets = actor.get("keypoints2d", {})
        people.append({part: np.asarray(sets[name], dtype=np.float64)
                       for name, part in KEYPOINT_SET_PARTS.items() if name in sets})
    return people


def draw_pose(height: int, width: int, people: Sequence[Mapping[str, np.ndarray | None]], *,
              order: str = "openpose", parts: Sequence[str] = PARTS, backend: str = "auto") -> np.ndarray:
    """Draw people's keypoints on a black (height, width, 3) uint8 RGB canvas, as the annotator does.

    ``people``: one mapping per person with optional ``body`` (18, 3) in ``render.meta.OPENPOSE18``
    order, ``hand_left`` / ``hand_right`` (21, 3) in OpenPose hand order, ``face`` (68, 3); rows are
    ``[x_px, y_px, visible]`` (pixels, meta convention); invisible points and the limbs/edges that
    touch them are not drawn. ``order``: ``"openpose"`` or ``"dwpose"`` (module docstring).
    ``parts``: which of ``body``, ``hand_left``, ``hand_right``, ``face`` to draw.
    ``backend``: ``"cv2"``, ``"numpy"`` or ``"auto"`` (cv2 when importable); both give the same pixels.
    """
    if order not in ("openpose", "dwpose"):
        raise ValueError(f"order must be 'openpose' or 'dwpose', not {order!r}")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    if backend == "auto":
        backend = "cv2" if cv2 is not None else "numpy"
    if backend == "cv2" and cv2 is None:
        raise ValueError("backend 'cv2' asked for but OpenCV is not importable")
    canvas = np.zeros((height, width, 3), np.uint8)
    painter = _Cv2Painter(canvas) if backend == "cv2" else _NumpyPainter(canvas)
    pts = [{k: _points(p.get(k), width, height) for k in PARTS if k in parts} for p in people]

    layers = (("body", _draw_limbs), ("body", _draw_joints), ("hand_left", _draw_hand),
              ("hand_right", _draw_hand), ("face", _draw_face))
    groups = [[q] for q in pts] if order == "openpose" else [pts]
    for group in groups:
        for part, draw in layers:
            items = [q[part] for q in group if q.get(part)]
            if draw in (_draw_limbs, _draw_joints):
                draw(painter, items, width, height)
            else:
                for points in items:
                    draw(painter, points, width, height)
    return canvas
