"""Scene actors -> (name, AvatarAsset, Motion on the avatar's skeleton, placed in the world).

Actors given as ``avatar: baked.npz`` + a motion file on that skeleton need numpy only (this runs in
a stock Blender). Actors given as ``body:`` (baking), with a motion on another skeleton
(retargeting) or ``{generate: ...}`` need the torch side of ``motion/``: :func:`prepare` does that
in the CLI process and writes a scene whose actors are all baked files, which is what the
``blender -b`` entry renders (it runs ``avatarcine render --prepare-only`` for it).
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from motion.asset import AvatarAsset
from motion.errors import UserError
from motion.motion import Motion
from motion.ops import place
from motion.fileio import save_json

PREPARED = ".prepared"


def _path(value: str, base_dir: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base_dir / p


def needs_motion_package(actor: dict) -> bool:
    """Whether this actor needs baking / generation (the torch side) before Blender can use it."""
    return "avatar" not in actor or not isinstance(actor["motion"], str)


def load_baked(actor: dict, base_dir: Path) -> tuple[str, AvatarAsset, Motion]:
    """A numpy-only actor: baked avatar + motion on its skeleton, placed as the scene says."""
    asset = AvatarAsset.load(_path(actor["avatar"], base_dir))
    motion_path = _path(actor["motion"], base_dir)
    motion = Motion.load(motion_path)
    if list(motion.joint_names) != list(asset.joint_names):
        raise UserError(motion_path, f"motion is on skeleton {motion.skeleton!r}, the avatar on {asset.skeleton!r}: "
                                     "give body: instead of avatar: to retarget it, or retarget it first")
    motion = place(motion, actor.get("position"), actor.get("heading_deg"))
    return actor["name"], asset, motion


def load_actors(scene: dict, base_dir: Path) -> list[tuple[str, AvatarAsset, Motion]]:
    """All actors of a validated scene; baking/generation through ``motion.actors`` when needed."""
    if not any(needs_motion_package(a) for a in scene["actors"]):
        return [load_baked(a, base_dir) for a in scene["actors"]]
    try:
        from motion.actors import load_cast, perform
    except ImportError as exc:
        raise UserError("actors", f"baking bodies / generating motions needs the avatarcine motion package "
                                  f"with torch ({exc}); give baked avatar: + motion: files instead") from None
    entries = [{k: v for k, v in a.items() if v is not None} | {"position": a.get("position"),
                                                                "heading_deg": a.get("heading_deg")}
               for a in scene["actors"]]
    return [(a.name, a.asset, perform(a)) for a in load_cast(entries, base_dir=base_dir)]


def prepare(scene: dict, out_dir: Path, base_dir: Path) -> Path:
    """Bake/retarget/generate every actor and write ``out_dir/.prepared/scene.json`` whose actors
    are baked files with their motions already placed (position/heading omitted)."""
    folder = out_dir / PREPARED
    folder.mkdir(parents=True, exist_ok=True)
    actors = []
    for name, asset, motion in load_actors(scene, base_dir):
        safe = hashlib.sha1(name.encode()).hexdigest()[:10]
        asset.save(folder / f"{safe}.avatar.npz", force=True)
        motion.save(folder / f"{safe}.motion.npz", force=True)
        actors.append({"name": name, "avatar": f"{safe}.avatar.npz", "motion": f"{safe}.motion.npz"})
    prepared = {**scene, "actors": actors, "camera": copy.deepcopy(scene["camera"])}
    for shot in (prepared["camera"].get("shots", [prepared["camera"]])):
        if shot.get("type") == "from_file":      # keep camera files resolvable from the new folder
            shot["path"] = str(_path(shot["path"], base_dir).resolve())
    return save_json(folder / "scene.json", json.loads(json.dumps(prepared)))
