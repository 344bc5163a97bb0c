"""Seeded benchmark identities (``motion.bodies.appearance``: an Anny shape + a painted outfit).

An identity is drawn from ``numpy.random.default_rng([seed, index])`` (identity k does not depend on
how many others are drawn):

- shape: Anny phenotypes gender, muscle, weight, height, proportions uniform in [0.15, 0.85] (clear of
  the extremes) and age in [0.5, 0.85] (adults: 0.5 is about 25 years in MakeHuman's age axis);
- skin: a tone interpolated between a light and a deep sRGB skin colour;
- clothing: a top, a bottom and shoes, each a colour drawn in HSV.
"""

from __future__ import annotations

import colorsys

import numpy as np

from motion.bodies.appearance import BOTTOMS, TOPS, Identity

PHENOTYPE_RANGES = {"gender": (0.15, 0.85), "age": (0.5, 0.85), "muscle": (0.15, 0.85),
                    "weight": (0.15, 0.85), "height": (0.15, 0.85), "proportions": (0.15, 0.85)}
SKIN_LIGHT = np.array([246.0, 208.0, 180.0])
SKIN_DEEP = np.array([92.0, 58.0, 42.0])


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
