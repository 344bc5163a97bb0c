"""Body models baked into avatar assets: Anny (default, ships with its data) and the SMPL family
(SMPL, SMPL-H, SMPL-X through ``smplx`` when the user has the licensed model files)."""

from __future__ import annotations

import os

from motion.asset import AvatarAsset
from motion.errors import UserError

BODIES = ("anny", "smpl", "smplh", "smplx")


def bake_avatar(body: str = "anny", model_path: str | os.PathLike | None = None, gender: str | None = None,
                shape: dict | None = None) -> AvatarAsset:
    """A validated avatar asset for ``body``.

    ``shape``: Anny phenotypes (gender, age, muscle, weight, height, proportions in 0..1) or SMPL
    betas (``beta0`` .. ``betaN``). ``model_path`` / ``gender`` select SMPL-family model files;
    Anny ships its data (``model_path`` is not used) and reads ``gender`` as its gender phenotype
    (male 0, neutral 0.5, female 1) unless ``shape`` sets it. Anny with no shape and no gender is the
    shipped clothed default avatar (``motion.bodies.default_avatar``), loaded without baking.
    """
    if body == "anny":
        from motion.bodies.anny_body import bake_anny, phenotypes_with_gender

        if not shape and gender is None:
            from motion.bodies.default_avatar import default_avatar
            return default_avatar()

        return bake_anny(phenotypes_with_gender(shape, gender))
    if body in ("smpl", "smplh", "smplx"):
        from motion.bodies.smpl_family import bake_smpl

        return bake_smpl(body, model_path, gender, shape)
    raise UserError("--body", f"unknown body {body!r}; known: {', '.join(BODIES)}")
