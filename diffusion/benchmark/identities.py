"""Seeded benchmark identities: an Anny body shape plus an appearance painted into its albedo texture.

An identity is drawn from ``numpy.random.default_rng([seed, index])`` (identity k does not depend on
how many others are drawn):

- shape: Anny phenotypes gender, muscle, weight, height, proportions uniform in [0.15, 0.85] (clear of
  the extremes) and age in [0.5, 0.85] (adults: 0.5 is about 25 years in MakeHuman's age axis);
- skin: a tone interpolated between a light and a deep sRGB skin colour;
- clothing: a top (tank top: torso; t-shirt: + upper arms; long sleeves: + lower arms), a bottom
  (shorts: pelvis + upper legs; trousers: + lower legs) and shoes (feet), each a colour drawn in HSV.

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

import colorsys
import dataclasses
from pathlib import Path

import numpy as np

from motion.asset import AvatarAsset
from motion.bodies.anny_texture import SKIN

PHENOTYPE_RANGES = {"gender": (0.15, 0.85), "age": (0.5, 0.85), "muscle": (0.15, 0.85),
                    "weight": (0.15, 0.85), "height": (0.15, 0.85), "proportions": (0.15, 0.85)}
SKIN_LIGHT = np.array([246.0, 208.0, 180.0])
SKIN_DEEP = np.array([92.0, 58.0, 42.0])
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


def _hsv(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> tuple[int, ...]:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value))
    return tuple(int(round(c * 255)) for c in rgb)


def draw_identity(seed: int, index: int) -> Identity:
    """Identity ``index`` of benchmark ``seed`` (see the module doc)."""
    rng = np.random.default_rng([int(seed), int(index)])
    phenotypes = {name: round(float(rng.uniform(lo, hi)), 4) for name, (lo, hi) in PHENOTYPE_RANGES.items()}
    skin = SKIN_LIGHT + rng.uniform(0, 1) * (SKIN_DEEP - SKIN_LIGHT)
    return Identity(
        id=f"id{index:03d}", phenotypes=phenotypes, skin=tuple(int(round(c)) for c in skin),
        top=str(rng.choice(sorted(TOPS))), top_colour=_hsv(rng, (0.2, 0.9), (0.25, 0.95)),
        bottom=str(rng.choice(sorted(BOTTOMS))), bottom_colour=_hsv(rng, (0.1, 0.8), (0.12, 0.7)),
        shoe_colour=_hsv(rng, (0.0, 0.6), (0.05, 0.9)),
    )


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
    from motion.bodies import bake_avatar

    asset = bake_avatar("anny", shape=identity.phenotypes)
    return dataclasses.replace(asset, texture=paint(asset, identity))


def write_identity(identity: Identity, path: str | Path, force: bool = False) -> Path:
    """Bake and save ``identity`` as a baked avatar file (scene ``avatar:``)."""
    return bake_identity(identity).save(path, force=force)
