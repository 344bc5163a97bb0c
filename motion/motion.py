"""The one motion type: a skeleton's local joint rotations and root path over time (numpy only)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from motion.errors import UserError
from motion.fileio import load_npz, save_npz
from motion.rotations import axis_angle_to_matrix
from motion.skeletons import check_parents

FORMAT = "avatarcine.motion/1"
MAX_FPS = 1000.0          # frame rates above this are refused where frames are made (resample, generate)


@dataclasses.dataclass
class Motion:
    """A clip on one skeleton.

    - ``rotations``: (T, J, 3) axis-angle, each joint relative to its parent in the skeleton's rest
      pose; joint 0's rotation maps the skeleton's modelling frame (e.g. Y up for SMPL) into the
      world (Z up, metres, Blender's).
    - ``root_translation``: (T, 3) world position of joint 0 in metres.
    - ``rest_offsets``: (J, 3) each joint's offset from its parent in the rest pose, in the modelling
      frame (row 0: the root's offset from the body-model origin). Needed for forward kinematics;
      None when the source did not say (then retargeting supplies the target's).
    - ``shape``: free-form body shape the source carried (``betas``, ``gender``, Anny phenotypes).
    """

    skeleton: str
    joint_names: list[str]
    parents: np.ndarray
    fps: float
    rotations: np.ndarray
    root_translation: np.ndarray
    rest_offsets: np.ndarray | None = None
    shape: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        self.root_translation = np.asarray(self.root_translation, dtype=np.float64)
        if self.rest_offsets is not None:
            self.rest_offsets = np.asarray(self.rest_offsets, dtype=np.float64)
        self.fps = float(self.fps)
        self.joint_names = [str(n) for n in self.joint_names]

    @property
    def n_frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def duration(self) -> float:
        """Seconds from the first to one frame past the last frame."""
        return self.n_frames / self.fps

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.n_frames) / self.fps

    def joint(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise UserError("joint", f"{name!r} is not a joint of skeleton {self.skeleton!r}") from None

    def replace(self, **changes) -> "Motion":
        return dataclasses.replace(self, **changes)

    def validate(self, where: str | os.PathLike = "motion") -> "Motion":
        """Raise a one-line UserError naming ``where`` for any inconsistency; return self."""
        where = str(where)
        J = len(self.joint_names)
        check_parents(self.parents, f"{where}: parents")
        if len(self.parents) != J:
            raise UserError(where, f"{J} joint names but {len(self.parents)} parents")
        if len(set(self.joint_names)) != J:
            raise UserError(where, "joint names are not unique")
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise UserError(where, f"fps must be a positive number, got {self.fps}")
        if self.rotations.ndim != 3 or self.rotations.shape[1:] != (J, 3):
            raise UserError(where, f"rotations must have shape (frames, {J}, 3), got {self.rotations.shape}")
        if self.rotations.shape[0] == 0:
            raise UserError(where, "motion has zero frames")
        if self.root_translation.shape != (self.rotations.shape[0], 3):
            raise UserError(where, f"root_translation must have shape ({self.rotations.shape[0]}, 3), "
                                   f"got {self.root_translation.shape}")
        if self.rest_offsets is not None and self.rest_offsets.shape != (J, 3):
            raise UserError(where, f"rest_offsets must have shape ({J}, 3), got {self.rest_offsets.shape}")
        for field in ("rotations", "root_translation", "rest_offsets"):
            value = getattr(self, field)
            if value is not None and not np.all(np.isfinite(value)):
                raise UserError(where, f"{field} contains NaN or inf")
        return self

    def global_transforms(self, rest_offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: world rotation matrices (T, J, 3, 3) and joint positions (T, J, 3)."""
        offsets = self.rest_offsets if rest_offsets is None else np.asarray(rest_offsets, dtype=np.float64)
        if offsets is None:
            raise UserError(self.skeleton, "this motion has no rest skeleton; forward kinematics needs one")
        local = axis_angle_to_matrix(self.rotations)
        T, J = local.shape[:2]
        rot = np.empty_like(local)
        pos = np.empty((T, J, 3))
        rot[:, 0] = local[:, 0]
        pos[:, 0] = self.root_translation
        for j in range(1, J):
            p = self.parents[j]
            rot[:, j] = rot[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + rot[:, p] @ offsets[j]
        return rot, pos

    def joint_positions(self, rest_offsets: np.ndarray | None = None) -> np.ndarray:
        """World joint positions (T, J, 3)."""
        return self.global_transforms(rest_offsets)[1]

    # --- our own file format -------------------------------------------------------------------
    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        arrays = {
            "format": np.array(FORMAT),
            "skeleton": np.array(self.skeleton),
            "joint_names": np.array(self.joint_names),
            "parents": self.parents,
            "fps": np.array(self.fps),
            "rotations": self.rotations.astype(np.float32),
            "root_translation": self.root_translation.astype(np.float32),
        }
        if self.rest_offsets is not None:
            arrays["rest_offsets"] = self.rest_offsets
        for key, value in self.shape.items():
            arrays[f"shape.{key}"] = np.asarray(value)
        return save_npz(path, arrays, force=force)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Motion":
        data = load_npz(path)
        if str(data.get("format", "")) != FORMAT:
            raise UserError(path, f"not an avatarcine motion file (expected format {FORMAT!r})")
        missing = [k for k in ("skeleton", "joint_names", "parents", "fps", "rotations", "root_translation")
                   if k not in data]
        if missing:
            raise UserError(path, f"missing keys: {', '.join(missing)}")
        shape = {k[len("shape."):]: _unwrap(v) for k, v in data.items() if k.startswith("shape.")}
        return cls(
            skeleton=str(data["skeleton"]),
            joint_names=list(data["joint_names"]),
            parents=data["parents"],
            fps=float(data["fps"]),
            rotations=data["rotations"],
            root_translation=data["root_translation"],
            rest_offsets=data.get("rest_offsets"),
            shape=shape,
        ).validate(path)


def _unwrap(value: np.ndarray):
    return value.item() if value.ndim == 0 else value
