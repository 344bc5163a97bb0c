"""From one flat render (float channels of ``render.engines.configure_flat``) to the pass images, and
the exact encoding of every pass as written into meta.json.

All maps are (H, W[, C]) with row 0 at the top. Background is where no actor surface is hit
(instance id 0).
"""

from __future__ import annotations

import numpy as np

from render import pass_table
from render.meta import pass_entry, standard_pass

SEMANTIC_AOV = "semantic"   # the body-part colour AOV of the flat render (render.engines)
FLAT_LAYER = "ViewLayer"    # its view layer: EXR channels are named "<layer>.<pass>.<channel>"
SURFACE_ID_STRIDE = 1000    # surface id = actor instance id * SURFACE_ID_STRIDE + body part id

MESH_ALBEDO = np.array([0.80, 0.80, 0.82])       # pale grey-white
MESH_LIGHT = np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0])   # camera space, upper left-front
MESH_AMBIENT = 0.30


def _channel(channels: dict[str, np.ndarray], name: str) -> np.ndarray:
    return channels[f"{FLAT_LAYER}.{name}"]


def instance_ids(channels: dict) -> np.ndarray:
    return np.rint(_channel(channels, "Object Index.X")).astype(np.uint8)


BACKGROUND_Z = np.float32(1e10)     # Blender's Z where no surface is hit


def depth_metres(channels: dict) -> np.ndarray:
    """Planar metric z-depth along the camera axis (float32); 1e10 where there is no actor."""
    z = _channel(channels, "Depth.Z").astype(np.float32)
    return np.where(instance_ids(channels) > 0, z, BACKGROUND_Z)


def camera_normals(channels: dict, camera_to_world: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals in camera space (x right, y up, z towards the camera); 0 on background."""
    n_world = np.stack([_channel(channels, f"Normal.{c}") for c in "XYZ"], -1).astype(np.float64)
    n_cam = n_world @ camera_to_world[:3, :3]                       # R^T n for each pixel
    norm = np.linalg.norm(n_cam, axis=-1, keepdims=True)
    n_cam = np.where(norm > 1e-6, n_cam / np.maximum(norm, 1e-12), 0.0)
    return n_cam * (instance_ids(channels) > 0)[..., None]


def encode_normal(n_cam: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """ControlNet normal colours: round(255 * (0.5 n + 0.5)); background black."""
    rgb = np.floor(255.0 * (0.5 * n_cam + 0.5) + 0.5).clip(0, 255).astype(np.uint8)
    return rgb * foreground[..., None].astype(np.uint8)


def shade_mesh(n_cam: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Make-Your-Anchor-style body: pale uniform albedo, smooth Lambert shading from a light fixed to
    the camera plus ambient, sRGB-encoded, on black. Computed from the normal pass: noise-free."""
    lambert = np.clip(n_cam @ MESH_LIGHT, 0.0, 1.0)
    linear = MESH_ALBEDO * (MESH_AMBIENT + (1 - MESH_AMBIENT) * lambert)[..., None]
    return (srgb_encode(linear) * foreground[..., None]).astype(np.uint8)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear [0, 1] -> 8-bit sRGB (IEC 61966-2-1 transfer), rounded."""
    x = np.clip(linear, 0.0, 1.0)
    v = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.floor(255.0 * v + 0.5).astype(np.uint8)


def semantic_colours(channels: dict) -> np.ndarray:
    """(H, W, 3) uint8 raw palette colours (the AOV carries palette / 255 exactly); background black."""
    rgb = np.stack([_channel(channels, f"{SEMANTIC_AOV}.{c}") for c in "RGB"], -1)
    out = np.floor(rgb.astype(np.float64) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return out * (instance_ids(channels) > 0)[..., None].astype(np.uint8)


def surface_ids(channels: dict, palettes: dict[int, np.ndarray]) -> np.ndarray:
    """(H, W) int64 id of the surface at each pixel: instance id * SURFACE_ID_STRIDE + body part id
    (the part whose palette colour the semantic AOV holds), -1 on background. ``palettes``: actor
    instance id -> (P, 3) uint8 part colours of its avatar."""
    rgb = semantic_colours(channels).astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    ids = instance_ids(channels)
    out = np.full(ids.shape, -1, np.int64)
    for instance, palette in palettes.items():
        pal = np.asarray(palette, np.int64)
        keys = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
        order = np.argsort(keys, kind="stable")
        pos = np.minimum(np.searchsorted(keys[order], packed), len(keys) - 1)
        here = (ids == instance) & (keys[order][pos] == packed)
        out[here] = instance * SURFACE_ID_STRIDE + order[pos][here]
    return out


def forward_flow(channels: dict) -> np.ndarray:
    """(H, W, 2) forward optical flow in pixels (x right, y down) from this frame to the next.

    Blender's Vector pass holds, in pixels with y up, the motion from the previous frame (X, Y) and
    the negated motion to the next frame (Z, W); the forward flow is therefore (-Z, W) in image axes
    (checked against projected vertex motion in the tests). 0 on background.
    """
    fx, fy = -_channel(channels, "Vector.Z"), _channel(channels, "Vector.W")
    fg = instance_ids(channels) > 0
    return np.stack([fx * fg, fy * fg], -1).astype(np.float32)


def rgb_image(channels: dict) -> np.ndarray:
    """The beauty render (Combined) as 8-bit sRGB."""
    linear = np.stack([_channel(channels, f"Combined.{c}") for c in "RGB"], -1)
    return srgb_encode(linear)


def _mesh_entry(ctx: dict) -> dict:
    return pass_entry(
        "mesh", ext="png", dtype="uint8", channels=3, colour_space="sRGB", kind="image",
        encoding="pale uniform body (linear albedo %s), Lambert from a camera-fixed light (camera-space "
                 "direction %s) plus %.2f ambient, sRGB, on black (Make-Your-Anchor condition)"
                 % (MESH_ALBEDO.round(3).tolist(), MESH_LIGHT.round(4).tolist(), MESH_AMBIENT))


# meta.json entry builder of every output of render.pass_table, from the clip's palette, actor ids and
# depth range (``ctx``).
ENTRIES = {
    "mesh": _mesh_entry,
    "normal": lambda ctx: standard_pass("normal"),
    "depth": lambda ctx: standard_pass("depth_float", "depth", exr_channels=["Y"]),
    "depth_png": lambda ctx: standard_pass("depth", "depth_png", near=ctx["depth_range"][0],
                                           far=ctx["depth_range"][1], bits=8),
    "semantic": lambda ctx: standard_pass("labels", "semantic", palette=ctx["palette"]),
    "mask": lambda ctx: pass_entry("mask", ext="png", dtype="uint8", channels=1, colour_space="raw", kind="mask",
                                   encoding="binary foreground: 255 where any actor covers the pixel, else 0"),
    "instance": lambda ctx: standard_pass("mask", "instance", ids=ctx["instance_ids"]),
    "skeleton": lambda ctx: standard_pass("pose", "skeleton", order="openpose"),
    "flow": lambda ctx: standard_pass("flow", exr_channels=["R", "G"]),
    "flow_vis": lambda ctx: pass_entry("flow_vis", ext="png", dtype="uint8", channels=3, colour_space="sRGB",
                                       kind="image", encoding="Middlebury colour wheel of the forward flow "
                                       "(render.flowviz), normalised per frame"),
    "rgb": lambda ctx: pass_entry("rgb", ext="png", dtype="uint8", channels=3, colour_space="sRGB", kind="image",
                                  encoding="textured, lit avatars on a grey ground under sky light and a sun, "
                                           "path traced, sRGB transfer of the scene-linear render"),
    "avatar": lambda ctx: pass_entry("avatar", ext="png", dtype="uint8", channels=3, colour_space="sRGB",
                                     kind="image", encoding="the rgb render's textured, lit avatars with the ground "
                                     "hidden from the camera and a transparent film (sky and sun still light them), "
                                     "premultiplied colour on black, sRGB transfer"),
    "plate": lambda ctx: pass_entry("plate", ext="png", dtype="uint8", channels=3, colour_space="sRGB", kind="image",
                                    encoding="the rgb render with the avatars hidden from the camera (they still "
                                             "cast shadows and bounce light), sRGB transfer"),
}


def encodings(passes: list[str], palette: dict, instance_ids_by_actor: dict[str, int],
              depth_range: tuple[float, float]) -> dict[str, dict]:
    """meta.json ``passes`` entries (output name -> encoding) of the passes rendered, in table order."""
    ctx = {"palette": palette, "instance_ids": instance_ids_by_actor, "depth_range": depth_range}
    return {o.name: ENTRIES[o.name](ctx) for o in pass_table.outputs(passes)}
