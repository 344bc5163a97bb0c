"""The avatarcine Blender extension: a thin UI over motion/ and render/ (3D View > Sidebar > avatarcine).

Sections (``panel.py``), each backed by operators: Avatars (``avatar_ops``: add an avatar file, or
bake one in the backend Python), Motion (``motion_ops``: import, generate, retime / loop / trim),
Cameras (``camera_ops``: scripted cameras keyed as ordinary Blender cameras), Passes (``render_ops``:
the Blender scene as a scene file, ``scene_export``, rendered by ``render.api`` in a background
Blender) and Generate (``generate_ops``, controls from the method registry in ``method_settings``).
Long work runs in other processes (``jobs``, ``operators``); paths persist in the preferences.

The packaged extension (``avatarcine addon build``) carries the ``motion`` and ``render`` modules it
imports next to this file; a source checkout works too. Importing this package imports nothing else
(``avatarcine --help`` reaches it): bpy and the modules load in :func:`register`.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE if (HERE / "render").is_dir() else HERE.parent     # packaged zip vs source checkout


def _modules():
    from . import (avatar_ops, camera_ops, generate_ops, motion_ops, operators, panel, preferences, properties,
                   render_ops)
    return (preferences, operators, avatar_ops, motion_ops, camera_ops, render_ops, generate_ops, properties, panel)


def register():
    import bpy

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for module in _modules():
        for cls in module.CLASSES:
            bpy.utils.register_class(cls)
    from . import method_settings, properties
    properties.register_scene_settings()
    method_settings.load_cached()


def unregister():
    import bpy

    from . import method_settings, operators, properties
    for job in list(operators.RUNNING.values()):
        job.cancel()
    method_settings.clear()
    properties.unregister_scene_settings()
    for module in reversed(_modules()):
        for cls in reversed(module.CLASSES):
            bpy.utils.unregister_class(cls)
