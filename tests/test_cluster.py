"""``--ray``: render, bench dataset and generate as tasks on a local Ray cluster (``motion.cluster``).

The cluster is started inside this module on 127.0.0.1 with 2 CPUs and stopped at its end. The
functions of this module that tasks run (a clip whose worker is killed, a clip that always fails)
travel by value, so the workers need only the avatarcine packages. Generation without Ray over
several folders or scenes (resume, refusals) is in test_batches.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from _benchmark_util import run_cli, smoke_dataset
from _diffusion_util import one_thread, tiny_dir  # noqa: F401  (fixtures)
from _render_util import tube_avatar, wave_motion, write_actor
from diffusion.benchmark import commands as bench_commands
from diffusion.io.synthetic_passes import write_passes
from motion.cli import main


@pytest.fixture(scope="module")
def cluster(tiny_dir):
    """A local Ray cluster of 2 CPUs on 127.0.0.1; its address. Workers inherit this process's
    environment, hence the tiny models' cache set before it starts."""
    saved = dict(os.environ)
    # every Ray socket on the loopback (otherwise Ray advertises the machine's network address);
    # read when ray is first imported
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
                      AVATARCINE_CACHE=str(tiny_dir.parent))
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        os.environ.clear()
        os.environ.update(saved)
        pytest.skip("the ray extra (pip install 'avatarcine[ray]') is not installed")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        assert nodes.address.startswith("127.0.0.1:")
        yield nodes.address
    finally:
        nodes.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        os.environ.clear()
        os.environ.update(saved)


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but Blender's own log (it holds timings)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "blender.log"}


def _flaky(marker: str, log: str, real):
    """The dataset's clip task on a flaky cluster: the first attempt at ``train_001`` renders its first
    two frames, notes its pid and their records' inodes in ``marker`` and SIGKILLs its own worker;
    ``heldout_000`` raises on every attempt (each counted in ``log``)."""
    def task(out: str, clip_id: str, verbose: bool) -> str:
        if clip_id == "train_001" and not os.path.exists(marker):
            from diffusion.benchmark.dataset import planned_clip, prepare_clip
            from render.api import render_scene

            plan, clip = planned_clip(Path(out), clip_id)
            render_scene(prepare_clip(Path(out), plan, clip), Path(out) / clip["path"], frames=(0, 1), previews=False)
            records = sorted((Path(out) / clip["path"] / ".frames").glob("0*.json"))
            Path(marker).write_text(json.dumps({"pid": os.getpid(), "inodes": [p.stat().st_ino for p in records]}))
            os.kill(os.getpid(), signal.SIGKILL)
        if clip_id == "heldout_000":
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
            raise RuntimeError("injected failure")
        return real(out, clip_id, verbose)
    return task


def test_dataset_on_ray_survives_a_killed_worker_names_a_failing_clip_and_matches_serial(cluster, tmp_path,
                                                                                          monkeypatch, capsys):
    marker, log, out = tmp_path / "killed.json", tmp_path / "attempts.txt", tmp_path / "ray"
    real = bench_commands.clip_task
    monkeypatch.setattr(bench_commands, "clip_task", _flaky(str(marker), str(log), real))
    code = run_cli(monkeypatch, "bench", "dataset", "--size", "smoke", "-o", out, "--ray", cluster, "--retries", "1")
    # the clip that always fails: named, one line, exit 2, attempted 1 + --retries times
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("avatarcine: error: --ray: 1 of 4 tasks failed after 2 attempts: heldout_000 (")
    assert "RuntimeError: injected failure" in err[0]
    assert len(log.read_text().split()) == 2
    assert not (out / "manifest.json").exists() and not (out / "clips" / "heldout_000" / "meta.json").exists()
    # the killed worker: gone, its clip finished by the retry, which kept the two frames it had rendered
    killed = json.loads(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    records = sorted((out / "clips" / "train_001" / ".frames").glob("0*.json"))
    assert len(records) == 4 and [p.stat().st_ino for p in records[:2]] == killed["inodes"]
    # a rerun renders only the missing clip and gives the serial build, byte for byte
    done = {c: (out / "clips" / c / "rgb" / "000003.png").stat().st_ino
            for c in ("train_000", "train_001", "heldout_identity_000")}
    monkeypatch.setattr(bench_commands, "clip_task", real)
    assert run_cli(monkeypatch, "bench", "dataset", "--size", "smoke", "-o", out, "--ray", cluster) == 0
    assert {c: (out / "clips" / c / "rgb" / "000003.png").stat().st_ino for c in done} == done
    ours = _files(out)
    assert ours == _files(smoke_dataset(0))              # nothing lost, nothing extra (no lock or temp file left)
    rgb = [h for p, h in ours.items() if "/rgb/" in p]
    assert len(rgb) == 16 and len(set(rgb)) == 16        # control: 4 clips x 4 distinct frames, not blank images


def _scene(folder: Path, name: str, frames: int) -> Path:
    asset = tube_avatar()
    actor = write_actor(folder, name, asset, wave_motion(asset, frames, walk=0.4))
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"fps": 30, "resolution": [32, 24], "actors": [actor],
                                "camera": {"type": "orbit", "degrees": 30}, "passes": ["mesh", "mask", "skeleton"]}))
    return path


def test_render_several_scenes_on_ray_matches_serial_and_names_the_broken_one(cluster, tmp_path, capsys):
    scenes = [_scene(tmp_path, "ann", 3), _scene(tmp_path, "bob", 4)]
    broken = _scene(tmp_path, "eve", 3)
    (tmp_path / "eve.motion.npz").write_bytes(b"not an npz")
    assert main(["render", *map(str, scenes), "-o", str(tmp_path / "serial"), "--no-previews"]) == 0
    capsys.readouterr()
    code = main(["render", *map(str, scenes + [broken]), "-o", str(tmp_path / "ray"), "--no-previews",
                 "--ray", cluster, "--retries", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert f"1 of 3 tasks failed after 1 attempt: {broken} (" in err[0] and "eve.motion.npz" in err[0]
    for name in ("ann", "bob"):
        assert _files(tmp_path / "ray" / name) == _files(tmp_path / "serial" / name)
    assert _files(tmp_path / "ray" / "ann") != _files(tmp_path / "ray" / "bob")  # control: scenes differ


@pytest.mark.usefixtures("one_thread")
def test_generate_over_a_list_on_ray_matches_serial_and_skips_finished(cluster, tmp_path, capsys):
    folders = [write_passes(tmp_path / name, frames=2, size=size) for name, size in (("a", (64, 64)), ("b", (80, 64)))]
    listing = tmp_path / "clips.txt"
    listing.write_text("# passes folders\na\n\nb\n")
    common = ["--model", "tiny", "--prompt", "a person", "--steps", "2", "--seed", "1", "--no-side-by-side"]
    assert main(["generate", "--list", str(listing), "-o", str(tmp_path / "serial"), *common]) == 0
    assert main(["generate", "--list", str(listing), "-o", str(tmp_path / "ray"), "--ray", cluster, *common]) == 0
    for name in ("a", "b"):
        frames = tmp_path / "ray" / name / "frames"
        assert _files(frames) == _files(tmp_path / "serial" / name / "frames") and len(_files(frames)) == 2
    assert _files(tmp_path / "ray" / "a" / "frames") != _files(tmp_path / "ray" / "b" / "frames")
    capsys.readouterr()
    assert main(["generate", str(folders[0]), str(folders[1]), "-o", str(tmp_path / "ray"), *common]) == 0
    assert capsys.readouterr().out.count("done before, skipped") == 2


def test_without_ray_the_flag_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)                     # import ray -> ImportError
    scene = _scene(tmp_path, "ann", 3)
    assert main(["render", str(scene), "-o", str(tmp_path / "out"), "--ray"]) == 2
    assert run_cli(monkeypatch, "bench", "dataset", "-o", tmp_path / "data", "--ray", "auto") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["avatarcine: error: --ray: Ray is not installed; install it with: pip install 'avatarcine[ray]'"] * 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()
