"""A corpus of bad inputs across every command. Each must exit 2 with exactly one stderr line
``avatarcine: error: ...`` naming the file or field, no traceback, and leave the working folder
(inputs, outputs, the temp dir) exactly as it was: nothing new, nothing changed, nothing half-written.

Most cases call ``motion.cli.main`` in this process (same code path, captured stderr); those marked
``sub`` run ``python -m motion.cli`` as a subprocess, so the one-line / no-traceback property is
checked on real process output too. ``unprivileged`` cases write into a folder this user cannot write
(run as ``nobody`` after the imports when the suite runs as root).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from _eval_util import moving_square_clip, write_frames, write_passes
from _render_util import tube_avatar, wave_motion, write_actor
from motion.cli import main
from motion.fileio import TEMP_FOLDER

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
# Runs the CLI as nobody: imports (and Blender's session temp folder) done first, as the caller.
AS_NOBODY = """
import importlib, os, sys
import motion.cli
motion.cli.build_parser()
for name in sys.argv[1].split(","):
    importlib.import_module(name)
if "bpy" in sys.modules:
    os.chown(sys.modules["bpy"].app.tempdir, {uid}, {uid})
os.setgid({uid})
os.setuid({uid})
sys.exit(motion.cli.main(sys.argv[2:]))
""".format(uid=NOBODY)


@dataclasses.dataclass
class Case:
    argv: str                 # command line, paths relative to the working folder
    names: str                # what the one line must name (the file or field)
    sub: bool = False         # run as a subprocess
    unprivileged: str = ""    # modules to import before dropping privileges (a case writing into ro/)
    needs_bpy: bool = False


C = Case
CASES = {
    # --- top level and argument parsing: one line, the usage stays in --help
    "no command": C("", "COMMAND", sub=True),
    "unknown command": C("paint", "COMMAND"),
    "unknown option": C("methods --bogus", "unrecognized arguments: --bogus", sub=True),
    # --- motion info
    "info: missing file": C("motion info missing.npz", "missing.npz"),
    "info: truncated bvh": C("motion info bad.bvh", "bad.bvh", sub=True),
    "info: no extension": C("motion info afile", "afile"),
    "info: nan source fps": C("motion info clip.npz --source-fps nan", "--source-fps"),
    "info: negative sample": C("motion info clip.npz --sample -1", "--sample"),
    "info: no file": C("motion info", "motion info"),
    # --- motion convert
    "convert: parent is a file": C("motion convert clip.npz afile/out.npz", "afile/out.npz", sub=True),
    "convert: output is a folder": C("motion convert clip.npz folder.npz", "folder.npz"),
    "convert: output exists": C("motion convert clip.npz existing.npz", "existing.npz"),
    "convert: wrong extension": C("motion convert clip.npz out.txt", "out.txt"),
    "convert: fps 0": C("motion convert clip.npz out.npz --fps 0", "--fps"),
    "convert: fps inf": C("motion convert clip.npz out.npz --fps inf", "--fps"),
    "convert: fps too high": C("motion convert clip.npz out.npz --fps 1e9", "fps"),
    "convert: negative start": C("motion convert clip.npz out.npz --start -1", "--start"),
    "convert: start past the end": C("motion convert clip.npz out.npz --start 100", "--start/--end"),
    "convert: nan end": C("motion convert clip.npz out.npz --end nan", "--end"),
    "convert: unknown body": C("motion convert clip.npz out.npz --to xyz", "--to"),
    "convert: missing input": C("motion convert missing.npz out.npz", "missing.npz"),
    "convert: folder not writable": C("motion convert clip.npz ro/out.npz", "ro/out.npz",
                                      unprivileged="motion.io,motion.ops"),
    # --- motion generate
    "motion generate: txt output": C("motion generate walk -o clip.txt", "clip.txt", sub=True),
    "motion generate: parent is a file": C("motion generate walk -o afile/c.npz", "afile/c.npz"),
    "motion generate: output exists": C("motion generate walk -o existing.npz", "existing.npz"),
    "motion generate: nan fps": C("motion generate walk --fps nan -o c.npz", "--fps"),
    "motion generate: inf seconds": C("motion generate walk --seconds inf -o c.npz", "--seconds"),
    "motion generate: huge seconds": C("motion generate walk --seconds 1e9 -o c.npz", "seconds"),
    "motion generate: negative seed": C("motion generate walk --seed -1 -o c.npz", "--seed"),
    "motion generate: fractional seed": C("motion generate walk --seed 1.5 -o c.npz", "--seed"),
    "motion generate: unknown words": C("motion generate moonwalk -o c.npz", "text"),
    "motion generate: no output": C("motion generate walk", "-o/--output"),
    "motion generate: folder not writable": C("motion generate walk -o ro/c.npz", "ro/c.npz",
                                              unprivileged="motion.generate"),
    # --- avatar bake
    "bake: parent is a file": C("avatar bake -o afile/a.npz", "afile/a.npz"),
    "bake: wrong extension": C("avatar bake -o a.txt", "a.txt"),
    "bake: output exists": C("avatar bake -o existing.npz", "existing.npz"),
    "bake: nan shape": C("avatar bake --shape age=nan -o a.npz", "--shape age"),
    "bake: shape without value": C("avatar bake --shape age -o a.npz", "--shape"),
    "bake: missing model files": C("avatar bake --body smplx --model-path nomodels -o a.npz", "nomodels"),
    # --- render
    "render: missing scene": C("render missing.json -o out", "missing.json", sub=True),
    "render: invalid json": C("render scenes/broken.json -o out", "broken.json"),
    "render: nan fps": C("render scenes/fps_nan.json -o out", "fps"),
    "render: zero resolution": C("render scenes/res_zero.json -o out", "resolution"),
    "render: resolution above Blender's": C("render scenes/res_huge.json -o out", "resolution"),
    "render: buffers do not fit": C("render scenes/res_memory.json -o out", "resolution", sub=True),
    "render: frames past the motion": C("render scenes/frames_end.json -o out", "frames.end"),
    "render: seconds past the motion": C("render scenes/frames_seconds.json -o out", "frames.seconds"),
    "render: camera inside the actor": C("render scenes/camera_inside.json -o out", "camera"),
    "render: camera looking away": C("render scenes/camera_away.json -o out", "camera", sub=True),
    "render: camera at its target": C("render scenes/camera_target.json -o out", "camera.look_at"),
    "render: nan focal": C("render scenes/focal_nan.json -o out", "camera.focal_mm"),
    "render: elevation out of range": C("render scenes/elevation.json -o out", "camera.elevation_deg"),
    "render: fill 0": C("render scenes/fill_zero.json -o out", "camera.fill"),
    "render: key at its target": C("render scenes/key_target.json -o out", "camera.keys[1].look_at"),
    "render: unknown key": C("render scenes/unknown_key.json -o out", "colour"),
    "render: unknown pass": C("render scenes/unknown_pass.json -o out", "passes"),
    "render: zero samples": C("render scenes/samples_zero.json -o out", "engine.rgb_samples"),
    "render: nan heading": C("render scenes/heading_nan.json -o out", "actors[0].heading_deg"),
    "render: infinite position": C("render scenes/position_inf.json -o out", "actors[0].position"),
    "render: missing motion file": C("render scenes/missing_motion.json -o out", "nope.npz"),
    "render: output is a file": C("render scene.json -o afile", "afile"),
    "render: parent is a file": C("render scene.json -o afile/out", "afile/out"),
    "render: frames outside the clip": C("render scene.json -o out --frames 50:60", "--frames", sub=True),
    "render: frames backwards": C("render scene.json -o out --frames 5:2", "--frames"),
    "render: frames not numbers": C("render scene.json -o out --frames a:b", "--frames"),
    "render: blend file extension": C("render scene.json -o out --save-blend scene.txt", "scene.txt"),
    "render: another scene's output": C("render scene.json -o done", "done", needs_bpy=True),
    "render: prepare into a file": C("render scene.json -o afile --prepare-only", "afile"),
    "render: folder not writable": C("render scene.json -o ro/out", "ro/out", unprivileged="render.api"),
    "render: one of several scenes is invalid": C("render scene.json scenes/broken.json -o many", "broken.json"),
    "render: several scenes and --save-blend": C("render scene.json scenes/fps_nan.json -o many --save-blend s.blend",
                                                 "--save-blend"),
    "render: negative retries": C("render scene.json -o out --ray --retries -1", "--retries"),
    # --- eval
    "eval: frames numbered differently": C("eval pred_shift gt", "lacks frames 0 of the ground truth's 0..3",
                                           sub=True),
    "eval: frames named differently": C("eval pred_named gt", "no frames named NNNNNN.png"),
    "eval: no frame in common": C("eval pred_other gt", "none of the ground truth's 0..3"),
    "eval: extra frames": C("eval pred_extra gt", "has frames 4 the ground truth lacks"),
    "eval: report into a file": C("eval pred_ok gt -o afile", "afile"),
    "eval: report parent is a file": C("eval pred_ok gt -o afile/report", "afile/report"),
    "eval: report exists": C("eval pred_ok gt -o report", "report/metrics.json"),
    "eval: clip length 1": C("eval pred_ok gt --clip-length 1", "--clip-length"),
    "eval: nan depth tolerance": C("eval pred_ok gt --depth-tolerance nan", "--depth-tolerance"),
    "eval: one folder": C("eval gt", "eval"),
    "eval: ground truth is a file": C("eval pred_ok afile", "afile"),
    "eval: missing lpips weights": C("eval pred_ok gt --lpips none.pth", "none.pth"),
    "eval: report folder not writable": C("eval pred_ok gt -o ro/report", "ro/report",
                                          unprivileged="diffusion.evaluation.evaluate,diffusion.evaluation.report"),
    # --- bench
    "bench: no benchmark": C("bench", "bench"),
    "bench dataset: output is a file": C("bench dataset -o afile", "afile", sub=True),
    "bench dataset: parent is a file": C("bench dataset -o afile/data", "afile/data"),
    "bench dataset: negative seed": C("bench dataset --seed -1 -o data", "--seed"),
    "bench dataset: unknown size": C("bench dataset --size huge -o data", "--size"),
    "bench dataset: missing motion file": C("bench dataset --motion-file missing.npz -o data", "missing.npz"),
    "bench dataset: foreign folder": C("bench dataset -o nonempty", "nonempty"),
    "bench dataset: folder not writable": C("bench dataset -o ro/data", "ro/data",
                                            unprivileged="diffusion.benchmark.dataset"),
    "bench methods: not a dataset": C("bench methods gt -o report2", "gt"),
    "bench methods: report into a file": C("bench methods dataset -o afile", "afile"),
    "bench methods: unknown method": C("bench methods dataset --methods bogus -o report2", "--methods"),
    "bench methods: zero steps": C("bench methods dataset --steps 0 -o report2", "--steps"),
    "bench ray: output not empty": C("bench ray --size smoke -o nonempty", "nonempty"),
    "bench dataset: negative retries": C("bench dataset -o data --ray --retries -1", "--retries"),
    "bench render: tiny resolution": C("bench render --resolution 8", "--resolution"),
    "bench render: one frame": C("bench render --frames 1", "--frames"),
    "bench render: json parent is a file": C("bench render -o afile/bench.json", "afile/bench.json"),
    "bench render: wrong extension": C("bench render -o bench.txt", "bench.txt"),
    "bench motion: missing sample": C("bench motion --sample missing.npz", "missing.npz"),
    "bench generate: zero frames (error from a worker process)": C("bench generate --frames 0", "frames", sub=True),
    # --- addon, methods
    "addon build: parent is a file": C("addon build -o afile/addon.zip", "afile/addon.zip", sub=True),
    "addon build: output exists": C("addon build -o existing.zip", "existing.zip"),
    "addon install: no such blender": C("addon install --blender noblender", "--blender"),
    "addon: no action": C("addon", "addon"),
    "methods: extra argument": C("methods extra", "unrecognized arguments: extra"),
    # --- generate and train: the argument-level errors of the CLI's shared paths
    "generate: no passes": C("generate", "generate"),
    "generate: not a passes folder": C("generate nopasses --prompt p -o gen", "nopasses"),
    "generate: steps not a number": C("generate gt --steps x -o gen", "--steps"),
    "generate: unknown dtype": C("generate gt --dtype fp64 -o gen", "--dtype"),
    "generate: output exists": C("generate gt --prompt p -o nonempty", "nonempty"),
    "generate: missing record": C("generate --from-record missing.json -o gen", "missing.json"),
    "generate: missing list": C("generate --list missing.txt --prompt p -o gen", "missing.txt"),
    "generate: one of several folders is not a passes folder": C("generate nopasses gt --prompt p -o gen", "nopasses"),
    "train: unknown recipe": C("train dance x.yaml", "unknown recipe 'dance'"),
    "train: missing config": C("train controlnet missing.yaml", "missing.yaml", sub=True),
    "train: unknown key": C("train controlnet configs/unknown_key.yaml", "bogus"),
    "train: resolution not a multiple of 8": C("train controlnet configs/resolution.yaml", "resolution"),
    "train: nan learning rate": C("train controlnet configs/lr_nan.yaml", "learning_rate"),
    "generate: nan cfg": C("generate nopasses --prompt p --cfg nan -o gen", "--cfg"),
    "generate: inf cfg": C("generate nopasses --prompt p --cfg inf -o gen", "--cfg"),
    "generate: nan eta": C("generate nopasses --prompt p --eta nan -o gen", "--eta"),
    "generate: zero width": C("generate nopasses --prompt p --width 0 -o gen", "--width"),
    "generate: width not a multiple of 8": C("generate gt --prompt p --width 100 -o gen", "--width"),
    "generate: huge cfg": C("generate gt --prompt p --cfg 1e9 -o gen", "--cfg"),
    "generate: output parent is a file": C("generate nopasses --prompt p -o afile/gen", "afile/gen"),
    "generate: output not writable": C("generate gt --prompt p -o ro/gen", "ro/gen",
                                       unprivileged="diffusion.io.output,diffusion.methods.controlnet"),
    "generate: unknown method": C("generate gt --method nope -o gen", "--method"),
    "generate: flag of another method": C("generate gt --method controlnet --strength 1 -o gen",
                                          "unrecognized arguments: --strength"),
    "generate: scales do not match the ControlNets": C("generate gt --prompt p --controlnet-scale 1 2 -o gen",
                                                       "--controlnet-scale"),
    "generate: missing background image": C("generate gt --prompt p --background nobg.png -o gen", "nobg.png"),
    "generate: no prompt": C("generate gt -o gen", "--prompt"),
    "train: infinite learning rate": C("train controlnet configs/lr_inf.yaml", "learning_rate"),
}


def _scene(actor: dict, **changes) -> dict:
    scene = {"fps": 30, "resolution": [32, 24], "actors": [dict(actor)], "camera": {"type": "orbit", "degrees": 30},
             "passes": ["mask", "skeleton"]}
    for key, value in changes.items():
        if key.startswith("actor_"):
            scene["actors"][0][key[6:]] = value
        else:
            scene[key] = value
    return scene


def _make_work(root: Path) -> None:
    from motion.generate import generate_motion

    (root / "afile").write_text("not a folder")
    (root / "existing.npz").write_bytes(b"keep me")
    (root / "existing.zip").write_bytes(b"keep me")
    (root / "folder.npz").mkdir()
    (root / "nonempty").mkdir()
    (root / "nonempty" / "notes.txt").write_text("mine")
    (root / "bad.bvh").write_text("HIERARCHY\nROOT x\n{\n")
    generate_motion("walk", seconds=1.0, fps=10).save(root / "clip.npz")
    asset = tube_avatar()
    motion = wave_motion(asset, 6)
    actor = write_actor(root, "bob", asset, motion)
    (root / "scene.json").write_text(json.dumps(_scene(actor)))
    pelvis = motion.joint_positions(asset.rest_offsets)[0, 0].tolist()
    keys = [{"time": 0, "position": [0, -4, 1], "look_at": [0, 0, 1]}, {"time": 1, "position": [0, -4, 1],
                                                                          "look_at": [0, -4, 1]}]
    scenes = {
        "fps_nan": _scene(actor, fps=float("nan")), "res_zero": _scene(actor, resolution=[0, 24]),
        "res_huge": _scene(actor, resolution=[100000, 100000]), "res_memory": _scene(actor, resolution=[60000, 60000]),
        "frames_end": _scene(actor, frames={"start": 0, "end": 500}),
        "frames_seconds": _scene(actor, frames={"seconds": 100}),
        "camera_inside": _scene(actor, camera={"type": "static", "position": pelvis,
                                               "look_at": [pelvis[0], pelvis[1] - 1, pelvis[2]]}),
        "camera_away": _scene(actor, camera={"type": "static", "position": [0, -4, 1], "look_at": [0, -8, 1]}),
        "camera_target": _scene(actor, camera={"type": "static", "position": [0, -4, 1], "look_at": [0, -4, 1]}),
        "focal_nan": _scene(actor, camera={"type": "orbit", "focal_mm": float("nan")}),
        "elevation": _scene(actor, camera={"type": "orbit", "elevation_deg": 120}),
        "fill_zero": _scene(actor, camera={"type": "static", "fill": 0}),
        "key_target": _scene(actor, camera={"type": "keyframes", "keys": keys}),
        "unknown_key": _scene(actor, colour="red"), "unknown_pass": _scene(actor, passes=["mask", "xray"]),
        "samples_zero": _scene(actor, engine={"rgb_samples": 0}),
        "heading_nan": _scene(actor, actor_heading_deg=float("nan")),
        "position_inf": _scene(actor, actor_position=[0.0, float("inf")]),
        "missing_motion": _scene(actor, actor_motion="nope.npz"),
    }
    (root / "scenes").mkdir()
    for name, scene in scenes.items():
        for a in scene["actors"]:            # scene files live one folder down
            a.update({k: f"../{a[k]}" for k in ("avatar", "motion")})
        (root / "scenes" / f"{name}.json").write_text(json.dumps(scene))
    (root / "scenes" / "broken.json").write_text("{")
    clip = moving_square_clip(n=4)
    write_passes(root / "gt", clip, passes=("rgb",))
    write_frames(root / "pred_ok", clip["rgb"])
    for name, numbers in (("pred_shift", range(1, 5)), ("pred_other", range(10, 14)), ("pred_extra", range(5))):
        for k, n in enumerate(numbers):
            (root / name / "frames").mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "pred_ok" / "frames" / f"{k % 4:06d}.png", root / name / "frames" / f"{n:06d}.png")
    (root / "pred_named" / "frames").mkdir(parents=True)
    for k in range(4):
        shutil.copy(root / "pred_ok" / "frames" / f"{k:06d}.png", root / "pred_named" / "frames" / f"frame_{k}.png")
    (root / "report").mkdir()
    (root / "report" / "metrics.json").write_text("{}")
    from diffusion.benchmark.dataset import FORMAT
    (root / "dataset").mkdir()
    (root / "dataset" / "manifest.json").write_text(json.dumps({"format": FORMAT, "spec": {"resolution": 48},
                                                                 "splits": {"train": []}}))
    (root / "configs").mkdir()
    base = "data: [../gt]\npasses: [skeleton]\noutput: ../run\nmodel: tiny\nsteps: 1\n"
    for name, extra in (("unknown_key", "bogus: 1\n"), ("resolution", "resolution: 12\n"),
                        ("lr_nan", "learning_rate: .nan\n"), ("lr_inf", "learning_rate: .inf\n")):
        (root / "configs" / f"{name}.yaml").write_text(base + extra)
    try:
        from render.api import render_scene

        import bpy  # noqa: F401
    except ImportError:
        pass
    else:                     # a finished render of another scene (two frames only)
        other = _scene(actor, frames={"start": 0, "end": 1})
        render_scene(other, root / "done", base_dir=root, previews=False)
    (root / "ro").mkdir()
    (root / "ro").chmod(0o555)


@pytest.fixture(scope="module")
def work():
    """The working folder: world-readable (for the unprivileged cases), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="avatarcine-bad-inputs-"))
    root.chmod(0o755)
    saved = tempfile.tempdir
    tempfile.tempdir = str(root / "systmp")
    try:
        (root / "systmp").mkdir()
        _make_work(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        tempfile.tempdir = saved
    yield root
    (root / "ro").chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)


def snapshot(root: Path) -> dict[str, object]:
    """Every path under ``root``: files with size and mtime, folders by name (their mtime moves when a
    temp entry comes and goes); in the temp dir ``systmp`` only what is ours (libraries keep caches there)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] == "systmp" and not any(TEMP_FOLDER.match(part) or part.startswith("blender_")
                                                for part in rel.parts[1:2]):
            continue
        out[str(rel)] = "dir" if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
    return out


def _env(root: Path, tmpdir: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "AVATARCINE_QUIET": "1", "TMPDIR": str(tmpdir)}


def run_case(case: Case, root: Path, capsys, monkeypatch) -> tuple[int, str]:
    argv = case.argv.split()
    if case.unprivileged and os.geteuid() == 0:
        blender_tmp = Path(tempfile.mkdtemp(prefix="avatarcine-nobody-"))
        blender_tmp.chmod(0o1777)
        try:
            done = subprocess.run([sys.executable, "-c", AS_NOBODY, case.unprivileged, *argv], cwd=root,
                                  env=_env(root, blender_tmp), capture_output=True, text=True, timeout=300)
            assert list(blender_tmp.iterdir()) == []
        finally:
            shutil.rmtree(blender_tmp, ignore_errors=True)
        return done.returncode, done.stderr
    if case.sub or case.unprivileged:
        done = subprocess.run([sys.executable, "-m", "motion.cli", *argv], cwd=root, env=_env(root, root / "systmp"),
                              capture_output=True, text=True, timeout=300)
        return done.returncode, done.stderr
    monkeypatch.chdir(root)
    monkeypatch.setattr(tempfile, "tempdir", str(root / "systmp"))
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def check_refusal(case: Case, root: Path, capsys, monkeypatch) -> str:
    if case.needs_bpy:
        pytest.importorskip("bpy")
    before = snapshot(root)
    code, err = run_case(case, root, capsys, monkeypatch)
    lines = err.splitlines()
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("avatarcine: error: ") and case.names in lines[0], err
    assert snapshot(root) == before                            # nothing new, changed or half-written
    return lines[0]


def test_the_corpus_covers_every_command():
    commands = {c.argv.split()[0] if c.argv else "" for c in CASES.values()}
    assert {"", "motion", "avatar", "render", "eval", "bench", "addon", "methods", "generate", "train"} <= commands
    assert len(CASES) >= 60 and sum(c.sub for c in CASES.values()) >= 12


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_one_line_refusal(name, work, capsys, monkeypatch):
    check_refusal(CASES[name], work, capsys, monkeypatch)


def test_a_closed_stdout_pipe_is_a_quiet_exit(work, capsys):
    proc = subprocess.Popen([sys.executable, "-m", "motion.cli", "methods", "--json"], cwd=work,
                            env=_env(work, work / "systmp"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                                        # the reader went away (like `| head`)
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == ""
    capsys.readouterr()
    assert main(["methods", "--json"]) == 0 and json.loads(capsys.readouterr().out)   # control: with a reader


def test_the_buffer_estimate_refuses_what_cannot_fit_and_passes_a_normal_size():
    from motion.errors import UserError
    from render.preflight import check_buffers

    check_buffers(512, 512, ["mesh", "rgb", "flow"], Path("."))             # control: a normal size passes
    with pytest.raises(UserError, match=r"resolution: 60000x60000 needs about \d.*of memory"):
        check_buffers(60000, 60000, ["mask"], Path("."))
