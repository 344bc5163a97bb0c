"""``avatarcine bench dataset``: the synthetic ground-truth dataset, deterministic by seed.

A dataset is a plan of clips, each (identity, motion, camera), rendered into a passes folder with
every condition pass plus ``flow`` and the ``rgb`` ground truth (Cycles with its fixed seed, so the
same seed gives byte-identical images). Splits:

- ``train``: pairs of training motions x training cameras, worn by training identities;
- ``heldout``: held-out motions x held-out cameras (the motion ids and camera ids are disjoint from
  train's, so no (motion, camera) pair, and no motion or camera alone, is shared), worn by training
  identities: this split measures generalisation to new poses and views;
- ``heldout_identity``: identities never seen in training, on (motion, camera) pairs taken from train
  clips: only the person changes, so this split measures generalisation to new appearance.

Motions come from the procedural generator (``motion.generate``; prompt and seed drawn per motion)
and from files (``--motion-file``; any format ``motion.io.read_motion`` reads, cut into consecutive
clip-long windows, each window one motion id). Every motion is retargeted to each identity that
performs it (``motion.retarget``) and starts at the origin facing -Y; camera azimuths are relative
to that facing (``render.cameras``).

Layout of ``DIR``::

    manifest.json                 sizes, identities, motions, cameras, clips per split (written last)
    identities/<id>.avatar.npz    baked avatars (scene ``avatar:``), identities/<id>.json appearance
    motions/<motion_id>.npz       source motions (their own skeleton)
    scenes/<clip>.json            the render scene, scenes/<clip>.motion.npz the retargeted motion
    clips/<clip>/                 the passes folder (render/meta.py) with rgb

Sizes (measured on 2 CPU cores, see the README): ``smoke`` 4 clips x 4 frames at 48x48 (seconds),
``small`` 26 clips x 24 frames at 128x128 (minutes), ``full`` 176 clips x 72 frames at 512x512
(hours).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from diffusion.benchmark.identities import draw_identity
from motion.bodies.appearance import Identity, write_identity
from motion.cluster import RETRIES
from motion.errors import UserError
from motion.fileio import check_writable, output_lock, save_json, sweep_stale_temps
from motion.progress import progress
from render import pass_table

FORMAT = "avatarcine.bench-dataset/1"
MANIFEST = "manifest.json"
PLAN = ".plan.json"        # the plan of a build in progress: a rerun with the same plan resumes it
SPLITS = ("train", "heldout", "heldout_identity")
PASSES = list(pass_table.names())
CAMERA_TYPES = ("static", "orbit", "dolly", "zoom", "follow", "handheld")
# Generated motions stand still for their first and last 0.5 s (``motion.generate.LEAD_IN``): we
# generate LEAD_IN longer at both ends and keep the middle, so short clips still move.
LEAD_IN = 0.5
PROMPTS = (
    "walk forward", "walk forward slowly then turn left", "run forward", "wave", "jump twice", "squat",
    "dance", "boxing", "turn around", "march forward", "jog forward then wave", "walk backward",
    "walk forward then squat", "wave with the left hand", "spin", "hop forward",
)


@dataclasses.dataclass(frozen=True)
class Size:
    resolution: int
    fps: float
    frames: int                 # per clip
    identities: tuple[int, int]  # train, unseen
    motions: tuple[int, int]     # train, held out
    cameras: tuple[int, int]     # train, held out
    clips: tuple[int, int, int]  # train, heldout, heldout_identity
    rgb_samples: int
    identity: str | None = None  # "default": every clip worn by the shipped default avatar (identities (1, 0))
    passes: tuple[str, ...] | None = None  # None: every pass

    def spec(self) -> dict:
        """The plan's ``spec``: the fields, without the optional ones left unset (so older plans and
        manifests stay equal to what this code plans)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


SIZES = {
    "smoke": Size(48, 8.0, 4, (2, 1), (2, 1), (2, 1), (2, 1, 1), 4),
    "small": Size(128, 12.0, 24, (6, 2), (6, 3), (4, 2), (16, 6, 4), 16),
    "full": Size(512, 24.0, 72, (32, 8), (32, 8), (12, 4), (128, 32, 16), 64),
    # the embedded model's data (diffusion/embedded): the default avatar only, the passes it trains on
    # (rgb target, mesh condition, mask for masked metrics, skeleton for retrieval, flow + depth for warping error,
    # plate for the rows composited onto the scene)
    "default-avatar": Size(128, 12.0, 16, (1, 0), (20, 4), (10, 4), (30, 6, 0), 16, identity="default",
                    passes=("mesh", "mask", "skeleton", "depth", "flow", "rgb", "plate")),
}


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """Independent streams: identities 1, motions 2, cameras 3, pairing 4."""
    return np.random.default_rng([int(seed), stream, int(index)])


def draw_camera(seed: int, index: int) -> dict:
    """Camera ``index``: its type cycles through CAMERA_TYPES (from a seeded offset), parameters seeded."""
    rng = _rng(seed, 3, index)
    kind = CAMERA_TYPES[(index + int(_rng(seed, 3, 10**6).integers(len(CAMERA_TYPES)))) % len(CAMERA_TYPES)]
    r = lambda lo, hi: round(float(rng.uniform(lo, hi)), 3)  # noqa: E731
    view = {"azimuth_deg": r(-180, 180), "elevation_deg": r(-5, 25), "focal_mm": r(35, 70)}
    if kind == "static":
        return {"type": "static", **view, "fill": r(0.7, 0.9)}
    if kind == "orbit":
        return {"type": "orbit", "start_deg": view["azimuth_deg"], "degrees": r(30, 120),
                "direction": str(rng.choice(["ccw", "cw"])), "elevation_deg": r(0, 25), "focal_mm": view["focal_mm"]}
    if kind == "dolly":
        return {"type": "dolly", **view, "ratio": r(1.3, 2.0), "towards": bool(rng.integers(2))}
    if kind == "zoom":
        ends = [r(28, 45), r(55, 85)]
        if rng.integers(2):
            ends.reverse()
        return {"type": "zoom", "azimuth_deg": view["azimuth_deg"], "elevation_deg": view["elevation_deg"],
                "focal_start_mm": ends[0], "focal_end_mm": ends[1]}
    if kind == "follow":
        return {"type": "follow", **view, "smoothing_s": r(0.2, 0.8)}
    return {"type": "handheld", "base": {"type": "static", **view, "fill": r(0.7, 0.85)},
            "seed": int(rng.integers(10**6)), "amplitude_deg": r(0.5, 2.0), "amplitude_m": r(0.005, 0.02),
            "frequency_hz": r(0.5, 1.5)}


def _file_windows(paths: list[str], size: Size) -> list[dict]:
    """Clip-long windows of each motion file (at the dataset fps), in file order."""
    from motion.io import read_motion
    from motion.ops import resample

    windows = []
    for path in paths:
        motion = resample(read_motion(path), size.fps)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if motion.n_frames < size.frames:
            raise UserError(path, f"{motion.n_frames} frames at {size.fps:g} fps; a clip needs {size.frames}")
        for k in range(motion.n_frames // size.frames):
            windows.append({"file": str(Path(path).resolve()), "sha256": digest, "first_frame": k * size.frames,
                            "frames": size.frames, "fps": size.fps})
    return windows


def draw_motions(seed: int, size: Size, motion_files: list[str]) -> list[dict]:
    """Motion sources, ids m000...: up to half from file windows (shuffled), the rest generated."""
    n = sum(size.motions)
    windows = _file_windows(motion_files, size)
    order = _rng(seed, 2, 10**6).permutation(len(windows))
    sources = [windows[i] for i in order][:(n + 1) // 2]
    prompt_order = _rng(seed, 2, 10**6 + 1).permutation(len(PROMPTS))
    for k in range(n - len(sources)):
        rng = _rng(seed, 2, k)
        sources.append({"generate": PROMPTS[prompt_order[k % len(PROMPTS)]], "seed": int(rng.integers(10**6)),
                        "seconds": size.frames / size.fps, "fps": size.fps, "start_s": LEAD_IN})
    # train/held-out assignment must not depend on source kind: shuffle before numbering
    mix = _rng(seed, 2, 10**6 + 2).permutation(n)
    return [{"id": f"m{i:03d}", **sources[j]} for i, j in enumerate(mix)]


def make_plan(size_name: str, seed: int, motion_files: list[str] | None = None) -> dict:
    """The whole dataset as data: identities, motions, cameras and the clips of every split."""
    if size_name not in SIZES:
        raise UserError("--size", f"unknown size {size_name!r} (one of {', '.join(SIZES)})")
    if int(seed) != seed or seed < 0:
        raise UserError("--seed", f"must be a non-negative integer, got {seed}")
    size = SIZES[size_name]
    n_id, n_unseen = size.identities
    if size.identity == "default":
        from motion.bodies.default_avatar import DEFAULT

        identities = [DEFAULT]
    else:
        identities = [draw_identity(seed, k) for k in range(n_id + n_unseen)]
    motions = draw_motions(seed, size, list(motion_files or []))
    cameras = [{"id": f"c{k:03d}", **draw_camera(seed, k)} for k in range(sum(size.cameras))]
    groups = {
        "identities": ([i.id for i in identities[:n_id]], [i.id for i in identities[n_id:]]),
        "motions": ([m["id"] for m in motions[:size.motions[0]]], [m["id"] for m in motions[size.motions[0]:]]),
        "cameras": ([c["id"] for c in cameras[:size.cameras[0]]], [c["id"] for c in cameras[size.cameras[0]:]]),
    }
    pairing = _rng(seed, 4)

    def pairs(motion_ids, camera_ids):
        grid = [(m, c) for m in motion_ids for c in camera_ids]
        return [grid[i] for i in pairing.permutation(len(grid))]

    def clips(split, pair_list, identity_ids, count):
        people = [identity_ids[i] for i in pairing.permutation(len(identity_ids))]
        return [{"id": f"{split}_{k:03d}", "split": split, "identity_id": people[k % len(people)],
                 "motion_id": pair_list[k % len(pair_list)][0], "camera_id": pair_list[k % len(pair_list)][1],
                 "path": f"clips/{split}_{k:03d}"} for k in range(count)]

    train = clips("train", pairs(groups["motions"][0], groups["cameras"][0]), groups["identities"][0], size.clips[0])
    heldout = clips("heldout", pairs(groups["motions"][1], groups["cameras"][1]), groups["identities"][0],
                    size.clips[1])
    seen_pairs = list(dict.fromkeys((c["motion_id"], c["camera_id"]) for c in train))
    seen_pairs = [seen_pairs[i] for i in pairing.permutation(len(seen_pairs))]
    unseen = clips("heldout_identity", seen_pairs, groups["identities"][1], size.clips[2])
    plan = {
        "format": FORMAT, "seed": int(seed), "size": size_name, "spec": size.spec(),
        "passes": list(size.passes or PASSES),
        "identities": [{**i.to_json(), "split": "train" if i.id in groups["identities"][0] else "unseen",
                        "avatar": f"identities/{i.id}.avatar.npz"} for i in identities],
        "motions": [{**m, "split": "train" if m["id"] in groups["motions"][0] else "heldout",
                     "path": f"motions/{m['id']}.npz"} for m in motions],
        "cameras": [{**c, "split": "train" if c["id"] in groups["cameras"][0] else "heldout"} for c in cameras],
        "splits": {"train": train, "heldout": heldout, "heldout_identity": unseen},
    }
    return json.loads(json.dumps(plan))        # exactly what manifest.json holds (lists, not tuples)


def _source_motion(entry: dict):
    """The source Motion of a plan motion entry (generated, or a window of a file)."""
    from motion.ops import trim

    fps = entry["fps"]
    if "generate" in entry:
        from motion.generate import generate_motion

        start, seconds = entry["start_s"], entry["seconds"]
        whole = generate_motion(entry["generate"], seconds=seconds + 2 * start, fps=fps, seed=entry["seed"])
        return trim(whole, start, start + seconds)
    from motion.io import read_motion
    from motion.ops import resample

    return trim(resample(read_motion(entry["file"]), fps), entry["first_frame"] / fps,
                (entry["first_frame"] + entry["frames"]) / fps)


def _scene(plan: dict, clip: dict, cameras: dict) -> dict:
    spec = plan["spec"]
    return {"fps": spec["fps"], "resolution": [spec["resolution"]] * 2,
            "frames": {"start": 0, "end": spec["frames"] - 1},
            "actors": [{"name": "person", "avatar": f"../identities/{clip['identity_id']}.avatar.npz",
                        "motion": f"{clip['id']}.motion.npz"}],
            "camera": {k: v for k, v in cameras[clip["camera_id"]].items() if k not in ("id", "split")},
            "passes": plan["passes"], "engine": {"rgb": "cycles", "rgb_samples": spec["rgb_samples"]}}


def _read_json(path: Path):
    """A state file's JSON, or a one-line UserError (a corrupt file, e.g. from a killed build)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(path, f"unreadable JSON ({exc}); delete it or pass --force") from None


def _prepare_dir(out: Path, plan: dict, force: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    marker = out / PLAN
    if not force and marker.is_file() and _read_json(marker) == plan:
        return                                   # same plan: resume
    if not marker.is_file() and not (out / MANIFEST).is_file():
        raise UserError(out, "is not empty and not a benchmark dataset; not touching it")
    if not force:
        raise UserError(out, "holds a benchmark dataset of another size/seed/motion files; pass --force to replace it")
    shutil.rmtree(out)


def build_dataset(out_dir: str | Path, size: str = "smoke", seed: int = 0, motion_files: list[str] | None = None,
                  force: bool = False, verbose: bool = False, ray: str | None = None, retries: int = RETRIES) -> Path:
    """Render the dataset of (``size``, ``seed``, ``motion_files``) into ``out_dir``; returns the
    manifest path. An interrupted build resumes when rerun with the same arguments (sweeping what
    the interrupted one left half-written); a second build into the same folder meanwhile is refused.
    Blender's own output goes to each clip's ``logs/blender.log``, or to the terminal when ``verbose``.
    With ``ray`` (a Ray address, ``motion.cluster``) identities, motions and clips are tasks on that
    cluster."""
    out = check_writable(out_dir, force=True, folder=True)
    plan = make_plan(size, seed, motion_files)
    if ray:
        from motion.cluster import require_ray
        require_ray()                            # before anything is written
    with output_lock(out):
        sweep_stale_temps(out, recursive=True)
        if (out / MANIFEST).is_file() and not force and _read_json(out / MANIFEST) == plan:
            return out / MANIFEST                # already built
        _prepare_dir(out, plan, force)
        out.mkdir(parents=True, exist_ok=True)
        _build(out, plan, verbose, ray, retries)
    return out / MANIFEST


def _build(out: Path, plan: dict, verbose: bool, ray: str | None, retries: int) -> None:
    """Write every file of ``plan`` not yet in ``out`` (resuming clip renders), the manifest last."""
    save_json(out / PLAN, plan)
    clips = [c for split in SPLITS for c in plan["splits"][split]]
    if ray:
        _build_on_ray(out, plan, clips, verbose, ray, retries)
    else:
        for entry in progress(plan["identities"], desc="identities", total=len(plan["identities"])):
            build_identity(out, entry)
        for entry in plan["motions"]:
            build_motion(out, entry)
        assets: dict = {}
        for clip in progress(clips, desc="clips", total=len(clips)):
            build_clip(out, plan, clip, verbose, assets)
    save_json(out / MANIFEST, plan)
    (out / PLAN).unlink()


def _build_on_ray(out: Path, plan: dict, clips: list[dict], verbose: bool, address: str, retries: int) -> None:
    """Identities and motions, then the clips, as tasks on the Ray cluster at ``address`` (what is
    already on disk is not submitted)."""
    from diffusion.benchmark.commands import clip_task
    from motion.cluster import Task, connected, run_tasks

    where = out.resolve()
    sources = [Task(e["id"], build_identity, (where, e)) for e in plan["identities"] if not (out / e["avatar"]).is_file()]
    sources += [Task(e["id"], build_motion, (where, e)) for e in plan["motions"] if not (out / e["path"]).is_file()]
    todo = [Task(c["id"], clip_task, (str(where), c["id"], verbose)) for c in clips if not clip_done(out, plan, c)]
    with connected(address):
        run_tasks(sources, address, retries, desc="identities and motions")
        run_tasks(todo, address, retries, desc="clips")


def build_identity(out: Path, entry: dict) -> None:
    """A plan identity's avatar and appearance record, unless already written."""
    from motion.bodies.default_avatar import DEFAULT, SHIPPED

    path = out / entry["avatar"]
    if not path.is_file():
        identity = Identity.from_json(entry)
        if identity == DEFAULT:                  # the shipped bake of this identity: no Anny needed
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SHIPPED, path)
        else:
            write_identity(identity, path)
        save_json(path.with_name(f"{entry['id']}.json"), entry)


def build_motion(out: Path, entry: dict) -> None:
    """A plan motion's source clip, unless already written."""
    path = out / entry["path"]
    if not path.is_file():
        _source_motion(entry).save(path)


def build_clip(out: Path, plan: dict, clip: dict, verbose: bool = False, assets: dict | None = None) -> Path:
    """Prepare the clip (:func:`prepare_clip`) and render it, resumably, into ``out / clip["path"]``."""
    from render.api import render_scene

    return render_scene(prepare_clip(out, plan, clip, assets), out / clip["path"], previews=False, verbose=verbose)


def prepare_clip(out: Path, plan: dict, clip: dict, assets: dict | None = None) -> Path:
    """Retarget the clip's motion to its identity (once) and write its scene; the scene's path.
    ``assets`` caches the identities' avatars between calls."""
    from motion.asset import AvatarAsset
    from motion.motion import Motion
    from motion.ops import place
    from motion.retarget import retarget

    assets = {} if assets is None else assets
    scene_path = out / "scenes" / f"{clip['id']}.json"
    motion_path = scene_path.with_name(f"{clip['id']}.motion.npz")
    if not motion_path.is_file():
        if clip["identity_id"] not in assets:
            assets[clip["identity_id"]] = AvatarAsset.load(out / "identities" / f"{clip['identity_id']}.avatar.npz")
        source = Motion.load(out / "motions" / f"{clip['motion_id']}.npz")
        place(retarget(source, assets[clip["identity_id"]]), (0.0, 0.0), 0.0).save(motion_path, force=True)
    return save_json(scene_path, _scene(plan, clip, {c["id"]: c for c in plan["cameras"]}))


def planned_clip(out: Path, clip_id: str) -> tuple[dict, dict]:
    """(plan, clip entry) of clip ``clip_id`` of the build in progress in ``out``."""
    plan = _read_json(out / PLAN)
    return plan, next(c for split in SPLITS for c in plan["splits"][split] if c["id"] == clip_id)


def clip_done(out: Path, plan: dict, clip: dict) -> bool:
    """Whether the clip's passes folder lists all its frames (its ``meta.json`` is written after the
    last frame; a build in progress has the same plan, so that is the whole clip)."""
    meta = out / clip["path"] / "meta.json"
    try:
        return len(json.loads(meta.read_text())["frames"]) == plan["spec"]["frames"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def load_manifest(dataset_dir: str | Path) -> dict:
    """The manifest of a built dataset (one-line UserError when missing or foreign)."""
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise UserError(dataset_dir, "not a benchmark dataset (no manifest.json); build one with "
                                     "`avatarcine bench dataset`")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(path, f"unreadable JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise UserError(path, f"not a benchmark dataset manifest (format {manifest.get('format')!r}, "
                              f"expected {FORMAT!r})")
    return manifest
