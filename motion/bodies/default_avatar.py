"""The default avatar: a clothed Anny of default shape, baked once and shipped inside the package.

A scene that asks for the default body (``body: anny`` with no shape and no gender) and
``bake_avatar("anny")`` read ``default_avatar.npz`` beside this module instead of baking Anny, so the
default needs neither torch nor Anny's first-load cache build. Any other shape bakes Anny as before.

Rebuild the shipped file (after changing Anny, the appearance painting or the outfit below) with
``avatarcine avatar bake --rebuild-default -o motion/bodies/default_avatar.npz --force``;
``tests/test_default_avatar.py`` checks that rebuilding gives the shipped asset.
"""

from __future__ import annotations

from pathlib import Path

from motion.asset import AvatarAsset
from motion.bodies.appearance import Identity, bake_identity

SHIPPED = Path(__file__).with_name("default_avatar.npz")
# Anny's default phenotypes (all 0.5: neutral gender, ~25 years, average build), light skin, a blue
# t-shirt, dark grey trousers and white shoes: clear part boundaries for condition-to-image models.
DEFAULT = Identity(
    id="default", phenotypes={p: 0.5 for p in ("gender", "age", "muscle", "weight", "height", "proportions")},
    skin=(226, 178, 146), top="t_shirt", top_colour=(40, 78, 160), bottom="trousers", bottom_colour=(58, 58, 64),
    shoe_colour=(236, 236, 232))


def build_default_avatar() -> AvatarAsset:
    """Bake and paint the default avatar from scratch (needs torch and Anny)."""
    return bake_identity(DEFAULT)


def default_avatar() -> AvatarAsset:
    """The shipped default avatar (numpy only)."""
    return AvatarAsset.load(SHIPPED)
