"""The avatarcine Blender extension: a thin UI over motion/ and render/.

A panel (3D View > Sidebar > avatarcine, ``panel.py``) picks the body (a baked avatar file or a body
model), the motion, the camera, the passes and the output folder; "Render passes" writes the scene as
JSON and renders it in a background Blender (``render/blender_entry.py``), so the open file is
untouched and the UI stays responsive; "Open result" opens the saved .blend of the render for editing.
The packaged extension (``avatarcine addon build``) carries the ``motion`` and ``render`` modules it
imports next to this file; a source checkout works too. Importing this package imports nothing else
(``avatarcine --help`` reaches it): the panel and bpy load in :func:`register`.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE if (HERE / "render").is_dir() else HERE.parent     # packaged zip vs source checkout


def register():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from . import panel
    panel.register()


def unregister():
    from . import panel
    panel.unregister()
