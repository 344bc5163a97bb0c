"""What a person wears: an Anny body shape plus an appearance painted into its albedo texture.

An appearance is a skin tone, a top (tank top: torso; t-shirt: + upper arms; long sleeves: + lower
arms), a bottom (shorts: pelvis + upper legs; trousers: + lower legs) and shoes (feet), each in its
own colour. The benchmark draws seeded identities of this kind (``diffusion.benchmark.identities``);
the package's default avatar is one of them (``motion.bodies.default_avatar``).

Painting (choice): the avatar's own albedo (``motion.bodies.anny_texture``: a flat skin tone times a
detail map, plus lips, nails and eyes) is recoloured per body part in UV space. Texels are assigned
to parts by rasterising each UV triangle with its face's part (``vertex_parts`` of its first
corner). Skin texels (chromaticity near the base skin tone) are scaled by new tone / base tone,
which keeps the detail map and leaves lips, nails and eyes as painted; clothing texels become the
garment colour times a softened luminance of the original (pores vanish, folds of the detail map
remain). The renderer's principled material has a fixed roughness (``render.stage``), so material
roughness is not part of an identity.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from motion.asset import AvatarAsset
from motion.bodies.anny_texture import SKIN

TOPS = {"tank_top": ("torso",), "t_shirt": ("torso", "left_upper_arm", "right_upper_arm"),
        "long_sleeves": ("torso", "left_upper_arm", "right_upper_arm", "left_lower_arm", "right_lower_arm")}
BOTTOMS = {"shorts": ("pelvis", "left_upper_leg", "right_upper_leg"),
           "trousers": ("pelvis", "left_upper_leg", "right_upper_leg", "left_lower_leg", "right_lower_leg")}
SHOES = ("left_foot", "right_foot")
SKIN_CHROMA_TOLERANCE = 0.03   # |rgb / sum - base rgb / sum|_inf below this: a skin texel


@dataclasses.dataclass(frozen=True)
class Identity:
    id: str
    phenotypes: dict
    skin: tuple[int, int, int]
    top: str
    top_colour: tuple[int, int, int]
    bottom: str
    bottom_colour: tuple[int, int, int]
    shoe_colour: tuple[int, int, int]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Identity":
        """From ``to_json`` output (extra keys, e.g. a manifest's ``split``, ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields})

    def part_colours(self) -> dict[str, tuple[int, int, int]]:
        """Body part -> garment colour for every clothed part."""
        out = {part: self.top_colour for part in TOPS[self.top]}
        out.update({part: self.bottom_colour for part in BOTTOMS[self.bottom]})
        out.update({part: self.shoe_colour for part in SHOES})
        return out


def texel_parts(asset: AvatarAsset, size: int) -> np.ndarray:
    """(size, size) int part id per texel (0 where no UV triangle lies), rows with v up like the texture."""
    import cv2

    parts = np.zeros((size, size), np.int32)
    pixels = np.stack([asset.uvs[..., 0] * size, (1.0 - asset.uvs[..., 1]) * size], -1)
    for tri, part in zip(np.round(pixels * 16).astype(np.int32), asset.vertex_parts[asset.faces[:, 0]]):
        cv2.fillConvexPoly(parts, tri, int(part), lineType=cv2.LINE_8, shift=4)
    return parts


def paint(asset: AvatarAsset, identity: Identity) -> np.ndarray:
    """The identity's (H, W, 3) uint8 albedo for ``asset`` (same UV layout as ``asset.texture``)."""
    if asset.texture is None or asset.uvs is None:
        raise ValueError(f"avatar body {asset.body!r} has no texture/UVs to paint")
    image = asset.texture.astype(np.float64)
    parts = texel_parts(asset, image.shape[0])
    chroma = image / np.maximum(image.sum(-1, keepdims=True), 1.0)
    skin = np.abs(chroma - SKIN / SKIN.sum()).max(-1) < SKIN_CHROMA_TOLERANCE
    out = image.copy()
    out[skin] = image[skin] * (np.asarray(identity.skin) / SKIN)
    luminance = image @ [0.2126, 0.7152, 0.0722] / float(SKIN @ [0.2126, 0.7152, 0.0722])
    shade = np.sqrt(np.clip(luminance, 0.0, 1.5))
    for part, colour in identity.part_colours().items():
        texels = parts == asset.part_names.index(part)
        out[texels] = np.asarray(colour, np.float64) * shade[texels, None]
    return np.clip(out, 0, 255).round().astype(np.uint8)


def bake_identity(identity: Identity) -> AvatarAsset:
    """The Anny avatar of ``identity`` with its painted albedo."""
    from motion.bodies.anny_body import bake_anny

    asset = bake_anny(identity.phenotypes)
    return dataclasses.replace(asset, texture=paint(asset, identity))


def write_identity(identity: Identity, path: str | Path, force: bool = False) -> Path:
    """Bake and save ``identity`` as a baked avatar file (scene ``avatar:``)."""
    return bake_identity(identity).save(path, force=force)
