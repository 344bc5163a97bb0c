"""Render engine settings, chosen per pass group for exactness and speed.

- Flat passes (depth, normal, semantic, instance ids, flow, and the mesh/skeleton passes derived from
  them) come from ONE Cycles render per frame: one sample, a box pixel filter of 0.01 px (every pixel
  is the surface at its centre: no anti-aliasing, no dithering, raw floats), no light bounces, all
  data passes of one view layer written to one multi-layer EXR (codec NONE) that ``render.exr`` reads.
  Peers (Champ) render a view layer per pass group instead, i.e. several renders per frame.
- ``rgb`` is a second render: Cycles path tracing (``rgb_samples``, OIDN denoiser when built in), or
  EEVEE when asked and an EGL context works (probed in a subprocess: EEVEE aborts the process without
  one). ``auto`` = Cycles, which works everywhere.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import bpy

from render.passes import FLAT_LAYER, SEMANTIC_AOV

_EEVEE_PROBE = (
    "import bpy; s = bpy.context.scene; s.render.engine = 'BLENDER_EEVEE'; "
    "s.render.resolution_x = s.render.resolution_y = 8; bpy.ops.render.render()"
)


@functools.lru_cache(maxsize=None)
def eevee_available() -> bool:
    """Whether EEVEE can render here (an EGL/GPU context), probed in a child process: a stock
    Blender re-runs its own binary, the ``bpy`` wheel (empty ``binary_path``) this Python."""
    binary = bpy.app.binary_path
    cmd = ([binary, "-b", "--factory-startup", "--python-expr", _EEVEE_PROBE] if binary
           else [sys.executable, "-c", _EEVEE_PROBE])
    try:
        return subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def configure_flat(scene: bpy.types.Scene, motion_vectors: bool = False) -> None:
    """Cycles, 1 sample, 0.01 px box filter, no bounces, data passes into a float multi-layer EXR.
    ``motion_vectors`` adds the Vector pass (flow); it costs two extra scene evaluations per frame."""
    scene.render.engine = "CYCLES"
    c = scene.cycles
    c.device = "CPU"
    c.samples = 1
    c.use_adaptive_sampling = False
    c.use_denoising = False
    c.pixel_filter_type = "BOX"
    c.filter_width = 0.01
    c.max_bounces = 0
    c.seed = 0
    scene.render.use_motion_blur = False
    scene.render.film_transparent = True
    scene.render.use_persistent_data = True
    layer = scene.view_layers[0]
    layer.name = FLAT_LAYER
    for name in ("use_pass_z", "use_pass_normal", "use_pass_object_index"):
        setattr(layer, name, True)
    layer.use_pass_vector = motion_vectors
    layer.use_pass_combined = False
    if SEMANTIC_AOV not in layer.aovs:
        aov = layer.aovs.add()
        aov.name, aov.type = SEMANTIC_AOV, "COLOR"
    settings = scene.render.image_settings
    settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.exr_codec = "NONE"
    settings.color_depth = "32"
    scene.view_settings.view_transform = "Raw" if "Raw" in _view_transforms(scene) else "Standard"


def configure_rgb(scene: bpy.types.Scene, engine: str, samples: int) -> None:
    """Path-traced (or EEVEE) beauty render into the same float EXR; the writer encodes it to sRGB."""
    if engine == "eevee":
        scene.render.engine = "BLENDER_EEVEE"
        scene.eevee.taa_render_samples = samples
    else:
        scene.render.engine = "CYCLES"
        c = scene.cycles
        c.samples = samples
        c.pixel_filter_type = "BLACKMAN_HARRIS"
        c.filter_width = 1.5
        c.max_bounces = 4
        c.use_denoising = "OPENIMAGEDENOISE" in _denoisers(c)
        if c.use_denoising:
            c.denoiser = "OPENIMAGEDENOISE"
    scene.render.film_transparent = False
    scene.view_layers[FLAT_LAYER].use_pass_combined = True


def _denoisers(cycles_settings) -> set[str]:
    return {item.identifier for item in cycles_settings.bl_rna.properties["denoiser"].enum_items}


def _view_transforms(scene) -> set[str]:
    return {i.identifier for i in scene.view_settings.bl_rna.properties["view_transform"].enum_items}


def resolve_rgb_engine(choice: str) -> str:
    if choice == "eevee":
        if not eevee_available():
            from motion.errors import UserError
            raise UserError("engine.rgb", "EEVEE cannot start here (no EGL/GPU context); use cycles or auto")
        return "eevee"
    return "cycles"
