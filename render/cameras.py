"""Scripted cameras in numpy: per-frame pose, focal length and principal point for every type of
``camera:`` in the scene file, plus the OpenCV/Blender conversions written once.

Conventions: ``render.projection`` (OpenCV vs Blender camera frames, K from lens/sensor/shift). Our
cameras use a 36 mm sensor with horizontal fit.

Framing. Unless the user fixes it, the camera distance is the smallest one at which every sampled
body point of every actor over the shot projects inside the central ``fill`` fraction of the frame
(solved exactly per point for the camera's orientation), so ``{type: static}`` or ``{type: orbit}``
alone keeps all actors in frame. Azimuths (``azimuth_deg``, orbit ``start_deg``) are relative to the
facing of the first actor (or the ``target`` actor) at the shot's first frame: 0 is in front of it,
90 on its left, counter-clockwise seen from above (``motion.ops.heading_of``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from motion.errors import UserError
from render.projection import CV_FROM_BLENDER_CAMERA, intrinsics_from_blender, world_to_camera_cv

SENSOR_MM = 36.0
CAMERA_TYPES = ("static", "orbit", "dolly", "zoom", "follow", "handheld", "keyframes", "from_file")


@dataclasses.dataclass
class CameraPath:
    """Per-frame camera: (T, 4, 4) Blender camera-to-world, (T,) focal mm, (T, 2) lens shift, (T,) shot."""
    camera_to_world: np.ndarray
    focal_mm: np.ndarray
    shift: np.ndarray
    shot: np.ndarray
    sensor_mm: float = SENSOR_MM

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """(T, 3, 3) OpenCV K for a ``width`` x ``height`` image (horizontal sensor fit)."""
        return np.stack([intrinsics_from_blender(f, self.sensor_mm, self.sensor_mm, "HORIZONTAL", width, height,
                                                 sx, sy) for f, (sx, sy) in zip(self.focal_mm, self.shift)])

    def world_to_camera_cv(self) -> np.ndarray:
        return np.stack([world_to_camera_cv(m) for m in self.camera_to_world])


def look_at(eye: np.ndarray, target: np.ndarray, roll_deg: np.ndarray | float = 0.0) -> np.ndarray:
    """(T, 4, 4) Blender camera-to-world looking from ``eye`` to ``target`` (T, 3), world Z up."""
    eye, target = np.atleast_2d(eye).astype(float), np.atleast_2d(target).astype(float)
    eye, target = np.broadcast_arrays(eye, target)
    back = eye - target
    back /= np.maximum(np.linalg.norm(back, axis=-1, keepdims=True), 1e-9)
    up = np.where(np.abs(back[:, 2:3]) > 0.999, [[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]])
    right = np.cross(up, back)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    cam_up = np.cross(back, right)
    roll = np.deg2rad(np.broadcast_to(roll_deg, (len(eye),)))[:, None]
    right, cam_up = np.cos(roll) * right + np.sin(roll) * cam_up, -np.sin(roll) * right + np.cos(roll) * cam_up
    M = np.tile(np.eye(4), (len(eye), 1, 1))
    M[:, :3, 0], M[:, :3, 1], M[:, :3, 2], M[:, :3, 3] = right, cam_up, back, eye
    return M


def _direction(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vectors from the subject towards the camera (azimuth 0: in front of a -Y-facing body)."""
    az, el = np.deg2rad(np.asarray(azimuth_deg, float)), np.deg2rad(np.asarray(elevation_deg, float))
    return np.stack(np.broadcast_arrays(np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)), -1)


def fit_distance(points: np.ndarray, target: np.ndarray, back: np.ndarray, focal_mm: np.ndarray,
                 aspect: float, fill: float = 0.85, sensor_mm: float = SENSOR_MM) -> np.ndarray:
    """Per-frame distance along ``back`` from ``target`` at which all ``points`` (T, N, 3) are in frame.

    Exact for a point q (relative to target, camera axes x, y, b): depth = d - q.b and the point is in
    frame when |q.x| <= tan_x * fill * depth (same for y), so d >= q.b + |q.x| / (fill * tan_x).
    """
    M = look_at(target + back, target)
    q = points - target[:, None]
    qx, qy, qb = (np.einsum("tnd,td->tn", q, M[:, :3, k]) for k in range(3))
    tan_x = sensor_mm / 2 / focal_mm
    tan_y = tan_x / aspect
    need = np.maximum(qb + np.abs(qx) / (fill * tan_x[:, None]), qb + np.abs(qy) / (fill * tan_y[:, None]))
    return need.max(1)


def _vec(spec: dict, key: str, default, where: str, n: int = 3) -> np.ndarray:
    value = spec.get(key, default)
    arr = np.asarray(value, dtype=float)
    if arr.shape != (n,):
        raise UserError(where, f"{key} must be a list of {n} numbers, got {value!r}")
    return arr


class _Shot:
    """Inputs of one shot: its frames, sampled body points, actor roots, image aspect."""

    def __init__(self, points: np.ndarray, roots: dict[str, np.ndarray], headings: dict[str, np.ndarray],
                 fps: float, aspect: float, where: str, spec: dict):
        self.points, self.roots, self.fps, self.aspect, self.where = points, roots, fps, aspect, where
        actor = spec.get("target") if isinstance(spec.get("target"), str) and spec["target"] in headings else None
        actor = actor or next(iter(headings), None)
        self.front = float(headings[actor][0]) if actor is not None else 0.0
        self.T = len(points)
        self.centre = 0.5 * (points.reshape(-1, 3).min(0) + points.reshape(-1, 3).max(0))

    def target(self, spec: dict) -> np.ndarray:
        """(T, 3) look-at point: ``target`` = actor name (its root path) or [x, y, z]; default clip centre."""
        target = spec.get("target")
        if target is None:
            return np.tile(self.centre, (self.T, 1))
        if isinstance(target, str):
            if target not in self.roots:
                raise UserError(self.where, f"target {target!r} is not an actor ({', '.join(self.roots)})")
            return self.roots[target]
        return np.tile(_vec(spec, "target", None, self.where), (self.T, 1))

    def direction(self, spec: dict, azimuth, default_elevation: float = 8.0) -> np.ndarray:
        """(T, 3) unit vectors towards the camera for azimuths relative to the actor's facing."""
        az = np.broadcast_to(np.asarray(azimuth, float) + self.front, (self.T,))
        return _direction(az, np.full(self.T, float(spec.get("elevation_deg", default_elevation))))

    def focal(self, spec: dict, default: float = 50.0) -> np.ndarray:
        return np.full(self.T, float(spec.get("focal_mm", default)))

    def fitted(self, spec: dict, target: np.ndarray, back: np.ndarray, focal: np.ndarray) -> np.ndarray:
        """Constant distance: the user's ``distance`` or the tightest that frames the whole shot."""
        if "distance" in spec:
            return np.full(self.T, float(spec["distance"]))
        return np.full(self.T, fit_distance(self.points, target, back, focal, self.aspect,
                                            float(spec.get("fill", 0.85))).max())


def _static(s: _Shot, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    focal = s.focal(spec)
    if "position" in spec:
        eye = np.tile(_vec(spec, "position", None, s.where), (s.T, 1))
        target = np.tile(_vec(spec, "look_at", s.centre, s.where), (s.T, 1))
        return look_at(eye, target, spec.get("roll_deg", 0.0)), focal
    target = np.tile(s.centre, (s.T, 1)) if "target" not in spec else s.target(spec)[:1].repeat(s.T, 0)
    back = s.direction(spec, spec.get("azimuth_deg", 0.0))
    d = s.fitted(spec, target, back, focal)
    return look_at(target + d[:, None] * back, target, spec.get("roll_deg", 0.0)), focal


def _orbit(s: _Shot, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    focal = s.focal(spec)
    target = s.target(spec)
    sign = {"ccw": 1.0, "cw": -1.0}.get(spec.get("direction", "ccw"))
    if sign is None:
        raise UserError(s.where, f"direction must be ccw or cw, got {spec['direction']!r}")
    u = np.arange(s.T) / max(s.T - 1, 1)
    az = float(spec.get("start_deg", 0.0)) + sign * float(spec.get("degrees", 360.0)) * u
    if "height" in spec:   # metres above the target: elevation from radius and height
        radius = float(spec.get("radius", 3.0))
        el = np.rad2deg(np.arctan2(float(spec["height"]), radius))
        spec = {**spec, "distance": float(np.hypot(radius, float(spec["height"]))), "elevation_deg": el}
    elif "radius" in spec:
        el = float(spec.get("elevation_deg", 10.0))
        spec = {**spec, "distance": float(spec["radius"]) / np.cos(np.deg2rad(el))}
    back = s.direction(spec, az, default_elevation=10.0)
    d = s.fitted(spec, target, back, focal)
    return look_at(target + d[:, None] * back, target, spec.get("roll_deg", 0.0)), focal


def _dolly(s: _Shot, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    focal = s.focal(spec)
    u = np.arange(s.T)[:, None] / max(s.T - 1, 1)
    if "start" in spec or "end" in spec:
        a, b = _vec(spec, "start", None, s.where), _vec(spec, "end", None, s.where)
        target = np.tile(_vec(spec, "look_at", s.centre, s.where), (s.T, 1))
        return look_at((1 - u) * a + u * b, target, spec.get("roll_deg", 0.0)), focal
    target = np.tile(s.centre, (s.T, 1))
    back = s.direction(spec, spec.get("azimuth_deg", 0.0))
    near = s.fitted(spec, target, back, focal)       # the closest end still frames everything
    far = near * float(spec.get("ratio", 1.6))
    d = far + (near - far) * u[:, 0] if spec.get("towards", True) else near + (far - near) * u[:, 0]
    return look_at(target + d[:, None] * back, target, spec.get("roll_deg", 0.0)), focal


def _zoom(s: _Shot, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    f0, f1 = float(spec.get("focal_start_mm", 35.0)), float(spec.get("focal_end_mm", 70.0))
    focal = f0 + (f1 - f0) * np.arange(s.T) / max(s.T - 1, 1)
    target = np.tile(s.centre, (s.T, 1))
    back = s.direction(spec, spec.get("azimuth_deg", 0.0))
    d = s.fitted(spec, target, back, np.full(s.T, max(f0, f1)))
    return look_at(target + d[:, None] * back, target), focal


def _smooth(x: np.ndarray, seconds: float, fps: float) -> np.ndarray:
    """Zero-phase exponential smoothing (forward then backward pass) with time constant ``seconds``."""
    if seconds <= 0:
        return x
    a = 1.0 - np.exp(-1.0 / (seconds * fps))
    y = x.copy()
    for t in range(1, len(y)):
        y[t] = y[t - 1] + a * (y[t] - y[t - 1])
    for t in range(len(y) - 2, -1, -1):
        y[t] = y[t + 1] + a * (y[t] - y[t + 1])
    return y


def _follow(s: _Shot, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    focal = s.focal(spec)
    name = spec.get("target", next(iter(s.roots)))
    raw = s.target({"target": name})
    target = _smooth(raw, float(spec.get("smoothing_s", 0.5)), s.fps)
    target[:, 2] = s.centre[2]
    back = s.direction(spec, spec.get("azimuth_deg", 0.0))
    d = s.fitted(spec, target, back, focal)
    return look_at(target + d[:, None] * back, target), focal


def _keyframes(s: _Shot, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    keys = spec["keys"]                          # checked by render.scene_config
    times = np.array([float(k.get("time", 0.0)) for k in keys])
    if np.any(np.diff(times) <= 0):
        raise UserError(s.where, "keys must have increasing time")
    t = np.arange(s.T) / s.fps
    eye = np.stack([np.interp(t, times, [_vec(k, "position", None, s.where)[i] for k in keys]) for i in range(3)], 1)
    tgt = np.stack([np.interp(t, times, [_vec(k, "look_at", s.centre, s.where)[i] for k in keys]) for i in range(3)], 1)
    focal = np.interp(t, times, [float(k.get("focal_mm", 50.0)) for k in keys])
    return look_at(eye, tgt), focal


def _from_file(s: _Shot, spec: dict, width: int, height: int, base_dir: Path) -> CameraPath:
    """Per-frame OpenCV intrinsics K and extrinsics world_to_camera (npz or json; held at the last frame)."""
    path = Path(spec.get("path", ""))
    path = path if path.is_absolute() else base_dir / path
    if path.suffix == ".json":
        import json
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(path, f"unreadable camera file ({exc})") from None
    else:
        from motion.fileio import load_npz
        data = load_npz(path)
    if "K" not in data or "world_to_camera" not in data:
        raise UserError(path, "camera file needs K (3x3 or Tx3x3) and world_to_camera (Tx4x4, OpenCV)")
    K = np.asarray(data["K"], float).reshape(-1, 3, 3)
    E = np.asarray(data["world_to_camera"], float).reshape(-1, 4, 4)
    idx = np.minimum(np.arange(s.T), len(E) - 1)
    K, E = K[np.minimum(idx, len(K) - 1)], E[idx]
    if not np.allclose(K[:, 0, 0], K[:, 1, 1], rtol=1e-3):
        raise UserError(path, "fx and fy differ; only square pixels are supported")
    c2w = np.linalg.inv(CV_FROM_BLENDER_CAMERA @ E)
    c2w[:, :3, :3] /= np.linalg.norm(c2w[:, :3, :3], axis=1, keepdims=True)
    shift = np.stack([(width / 2 - K[:, 0, 2]) / width, (K[:, 1, 2] - height / 2) / width], 1)
    return CameraPath(c2w, K[:, 0, 0] * SENSOR_MM / width, shift, np.zeros(s.T, int))


def _handheld(s: _Shot, spec: dict, width: int, height: int, base_dir: Path) -> CameraPath:
    """Seeded smooth shake on top of ``base`` (a camera spec, default static): sums of sines with
    random phases, ``amplitude_deg`` of rotation and ``amplitude_m`` of translation, around ``frequency_hz``."""
    base = _shot_path(s, spec.get("base", {"type": "static", "fill": 0.8}), width, height, base_dir)
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    t = np.arange(s.T)[:, None] / s.fps
    freq = float(spec.get("frequency_hz", 0.8)) * np.array([1.0, 1.7, 2.9])
    def noise(n: int) -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi, (n, 3))
        return np.stack([(np.sin(2 * np.pi * freq * t + phase[i]) / [1, 2, 4]).sum(1) / 1.75 for i in range(n)], 1)
    ang = np.deg2rad(float(spec.get("amplitude_deg", 0.8))) * noise(3)
    shake = np.tile(np.eye(4), (s.T, 1, 1))
    from motion.rotations import axis_angle_to_matrix
    shake[:, :3, :3] = axis_angle_to_matrix(ang)
    shake[:, :3, 3] = float(spec.get("amplitude_m", 0.01)) * noise(3)
    return dataclasses.replace(base, camera_to_world=base.camera_to_world @ shake)


_TYPES = {"static": _static, "orbit": _orbit, "dolly": _dolly, "zoom": _zoom, "follow": _follow,
          "keyframes": _keyframes}


def _shot_path(s: _Shot, spec: dict, width: int, height: int, base_dir: Path) -> CameraPath:
    kind = spec.get("type", "static")
    if kind == "from_file":
        return _from_file(s, spec, width, height, base_dir)
    if kind == "handheld":
        return _handheld(s, spec, width, height, base_dir)
    if kind not in _TYPES:
        raise UserError(s.where, f"unknown camera type {kind!r} (one of {', '.join(CAMERA_TYPES)})")
    c2w, focal = _TYPES[kind](s, spec)
    return CameraPath(c2w, focal, np.zeros((s.T, 2)), np.zeros(s.T, int))


def camera_path(spec: dict, points: np.ndarray, roots: dict[str, np.ndarray], fps: float, width: int,
                height: int, base_dir: str | os.PathLike = ".", headings: dict[str, np.ndarray] | None = None
                ) -> CameraPath:
    """The camera over the clip. ``spec`` is one camera or ``{shots: [..., each with seconds]}``
    (cuts between shots; the last shot runs to the end). ``points`` (T, N, 3) sample the bodies,
    ``roots`` name -> (T, 3) actor root paths, ``headings`` name -> (T,) facing in degrees."""
    headings = headings if headings is not None else {}
    shots = spec.get("shots", [spec])
    T, paths, start = len(points), [], 0
    for i, shot in enumerate(shots):
        last = i == len(shots) - 1
        if not last and not (isinstance(shot.get("seconds"), (int, float)) and shot["seconds"] > 0):
            raise UserError(f"camera.shots[{i}].seconds", f"every shot but the last needs seconds > 0, got "
                                                          f"{shot.get('seconds')!r}")
        n = T - start if last else min(T - start, int(round(float(shot["seconds"]) * fps)))
        if n <= 0:
            continue
        sl = slice(start, start + n)
        sub = _Shot(points[sl], {k: v[sl] for k, v in roots.items()}, {k: v[sl] for k, v in headings.items()},
                    fps, width / height, f"camera.shots[{i}]" if "shots" in spec else "camera", shot)
        path = _shot_path(sub, shot, width, height, Path(base_dir))
        paths.append(dataclasses.replace(path, shot=np.full(n, i)))
        start += n
    return CameraPath(*(np.concatenate([getattr(p, f) for p in paths]) for f in
                        ("camera_to_world", "focal_mm", "shift", "shot")))
