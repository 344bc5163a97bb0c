"""The add-on's preferences (persisted by Blender): the backend Python, the SMPL model folder and the
default output folder, and the paths derived from them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy
from bpy.props import StringProperty

from motion.errors import UserError

PACKAGE = __package__
ENV_PYTHON = "AVATARCINE_PYTHON"


class AVATARCINE_Preferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE

    backend_python: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="A Python with avatarcine and torch installed (baking bodies, motion, video generation "
                    "run as `python -m motion.cli ...`); empty: $AVATARCINE_PYTHON")
    smpl_dir: StringProperty(name="SMPL model folder", subtype="DIR_PATH",
                             description="Folder of your SMPL / SMPL-H / SMPL-X model files")
    output_dir: StringProperty(name="Default output folder", subtype="DIR_PATH",
                               description="Where avatars, motions, passes and videos go; empty: an "
                                           "'avatarcine' folder next to the .blend file (in the system's "
                                           "temporary folder while the file is unsaved)")

    def draw(self, context):
        for name in ("backend_python", "smpl_dir", "output_dir"):
            self.layout.prop(self, name)


def preferences(context) -> AVATARCINE_Preferences | None:
    """The add-on's preferences, or None when it was registered without being enabled (a script)."""
    addon = context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon is not None else None


def _path(value: str) -> str:
    return bpy.path.abspath(value) if value else ""


def backend(context) -> list[str]:
    """The command prefix that runs the avatarcine command line in the backend Python."""
    prefs = preferences(context)
    python = _path(prefs.backend_python if prefs else "") or os.environ.get(ENV_PYTHON, "")
    if not python:
        raise UserError("Backend Python", "not set: choose a Python with avatarcine and torch in "
                                          "Edit > Preferences > Add-ons > avatarcine")
    if not os.path.isfile(python):
        raise UserError(python, "no such file (the backend Python in the add-on preferences)")
    return [python, "-m", "motion.cli"]


def smpl_dir(context) -> str:
    prefs = preferences(context)
    return _path(prefs.smpl_dir) if prefs else ""


def work_dir(context) -> Path:
    """The output folder: the preference, else ``avatarcine/`` beside the saved .blend file, else in
    the system's temporary folder (not Blender's session folder, which goes when Blender quits)."""
    prefs = preferences(context)
    if prefs and prefs.output_dir:
        return Path(_path(prefs.output_dir))
    if bpy.data.filepath:
        return Path(bpy.data.filepath).parent / "avatarcine"
    return Path(tempfile.gettempdir()) / "avatarcine"


def unique_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem<suffix>``, or with ``-2``, ``-3``, ... when taken (never overwrite an earlier result)."""
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


CLASSES = (AVATARCINE_Preferences,)
