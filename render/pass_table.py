"""Every pass, declared once: what a scene asks for, the folders (outputs) it writes, how each is
encoded, what produces it, and how diffusion reads it. The scene validation, the renderer's buffer
estimate and forced-clean list, the benchmark dataset, diffusion's pass lookup and framing, the
ControlNet loader and the Blender add-on all read this table (pure Python: importable anywhere).

Adding a pass: one ``Pass`` entry here, its meta.json entry builder in ``render.passes.ENTRIES`` and
its producer in ``render.api`` (``_write_frame``).

Producers: ``flat`` = one Cycles render per frame with 1 sample, no bounces, Raw view (exact values:
normals, depth, ids, part colours, motion vectors); ``keypoints`` = drawn from the projected 3D joints
(no render); ``beauty`` = a path-traced render of the textured, lit scene (``avatar``: the same render with
the ground hidden from the camera and a transparent film, composited on black; ``plate``: the same
render with the avatars hidden from the camera, so their shadows and bounced light stay).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Output:
    """One folder of a pass (its name is also its ``meta.json`` key)."""

    name: str
    kind: str                          # render.meta entry kind: image, normal, depth, depth_float, labels, mask, pose, flow
    bytes_per_pixel: int               # uncompressed size of one frame's file per pixel (buffer estimate)
    reads_as: tuple[str, ...] = ()     # condition kinds diffusion reads this output as (outputs listed first win)
    labels: bool = False               # flat label colours or ids: resized with nearest neighbour, never blended
    aliases: tuple[str, ...] = ()      # folder names other tools give the same content


@dataclass(frozen=True)
class Pass:
    """What a scene's ``passes:`` list may ask for."""

    name: str
    summary: str
    producer: str                      # flat | keypoints | beauty (module doc)
    outputs: tuple[Output, ...]
    condition: bool = True             # a condition for diffusion (else ground truth / evaluation only)
    default: bool = True               # rendered when a scene names no passes
    render_channels: int = 0           # float channels it adds to the flat render's buffers


PASSES = (
    Pass("mesh", "pale, uniformly coloured, smooth-shaded body on black (Make-Your-Anchor condition)", "flat",
         (Output("mesh", "image", 3, ("mesh",)),)),
    Pass("normal", "camera-space normals, 0.5 n + 0.5: facing the camera = (128, 128, 255)", "flat",
         (Output("normal", "normal", 3, ("normal",), aliases=("normals",)),)),
    Pass("depth", "metric z-depth EXR + 8-bit PNG, near bright, normalised over the clip", "flat",
         (Output("depth", "depth_float", 4, ("depth",)), Output("depth_png", "depth", 1, ("depth",)))),
    Pass("semantic", "body-part colours from a fixed palette, exact (no anti-aliasing)", "flat",
         (Output("semantic", "labels", 3, ("semantic",), labels=True),)),
    Pass("mask", "binary foreground, and per-actor instance ids 1..N", "flat",
         (Output("mask", "mask", 1, ("mask",), aliases=("alpha", "matte")),
          Output("instance", "mask", 1, ("instance",), labels=True))),
    Pass("skeleton", "OpenPose-18 (+ hands, + SMPL-X face) drawn as ControlNet 1.1's annotator", "keypoints",
         (Output("skeleton", "pose", 3, ("openpose",), aliases=("openpose", "pose")),)),
    Pass("flow", "forward optical flow in pixels (EXR, x right / y down) + Middlebury colour wheel", "flat",
         (Output("flow", "flow", 8), Output("flow_vis", "image", 3)), condition=False, default=False,
         render_channels=4),
    Pass("rgb", "textured, lit avatars with ground and sky, path traced: the benchmark's ground truth", "beauty",
         (Output("rgb", "image", 3),), condition=False, default=False, render_channels=4),
    Pass("avatar", "textured, lit avatars on black: the rgb render without ground or sky (AMG condition)", "beauty",
         (Output("avatar", "image", 3, ("avatar",)),), default=False, render_channels=4),
    Pass("plate", "the rgb render with the avatars hidden from the camera (their shadows kept): the scene a "
                  "generated actor is composited onto (--background plate)", "beauty",
         (Output("plate", "image", 3),), condition=False, default=False, render_channels=4),
)
FLAT_CHANNELS = 8                      # float channels of the flat render every pass shares


def names() -> tuple[str, ...]:
    return tuple(p.name for p in PASSES)


def default_passes() -> tuple[str, ...]:
    return tuple(p.name for p in PASSES if p.default)


def get(name: str) -> Pass:
    return next(p for p in PASSES if p.name == name)


def beauty(passes: list[str] | tuple[str, ...]) -> bool:
    """Whether any of ``passes`` needs the path-traced render."""
    return any(get(p).producer == "beauty" for p in passes)


def outputs(passes: list[str] | tuple[str, ...] | None = None) -> list[Output]:
    """The outputs of ``passes`` (default: every pass), in table order."""
    chosen = names() if passes is None else passes
    return [o for p in PASSES if p.name in chosen for o in p.outputs]


def condition_aliases() -> dict[str, tuple[str, ...]]:
    """Condition kind -> the folder names that may hold it, preferred first (ours, then other tools')."""
    kinds: dict[str, list[str]] = {}
    for o in outputs():
        for kind in o.reads_as:
            kinds.setdefault(kind, []).append(o.name)
    for o in outputs():
        for kind in o.reads_as:
            kinds[kind] += [a for a in o.aliases if a not in kinds[kind]]
    return {kind: tuple(folders) for kind, folders in kinds.items()}


def label_outputs() -> tuple[str, ...]:
    return tuple(o.name for o in outputs() if o.labels)
