"""The shared safety helpers: UserError across processes, the number validator, the output guard,
the output lock (a second process refused, a killed holder's lock reusable), the stale-temp sweep."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from motion.errors import UserError, check_number, number_arg
from motion.fileio import atomic_path, check_writable, output_lock, sweep_stale_temps, temp_folder

REPO = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from motion.fileio import output_lock\n"
        "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")


def _refuse(where: str) -> None:
    raise UserError(where, "refused in a worker")


def test_user_error_survives_a_process_pool():
    exc = pickle.loads(pickle.dumps(UserError("--frames", "must be >= 1")))
    assert (exc.where, exc.problem, str(exc)) == ("--frames", "must be >= 1", "--frames: must be >= 1")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(UserError) as raised:
            pool.submit(_refuse, "clip.npz").result()
    assert raised.value.where == "clip.npz" and raised.value.problem == "refused in a worker"


@pytest.mark.parametrize("value,limits,message", [
    (float("nan"), {}, "finite"), (float("inf"), {"above": 0}, "finite"), (True, {}, "number"),
    ("3", {}, "number"), (0, {"above": 0}, "> 0"), (1.5, {"minimum": 0, "maximum": 1}, ">= 0 and <= 1"),
    (2.5, {"integer": True}, "whole"), (0, {"minimum": 1, "integer": True}, ">= 1"),
])
def test_check_number_refuses_with_the_field(value, limits, message):
    with pytest.raises(UserError, match=message) as raised:
        check_number(value, "cfg", **limits)
    assert raised.value.where == "cfg"


def test_check_number_and_argparse_type_accept_what_is_in_range():
    assert check_number(3.0, "steps", minimum=1, integer=True) == 3
    assert isinstance(check_number(3.0, "steps", integer=True), int)
    assert check_number(0.5, "fill", above=0, maximum=1) == 0.5
    parser = argparse.ArgumentParser()
    parser.add_argument("--eta", type=number_arg(minimum=0, maximum=1))
    assert parser.parse_args(["--eta", "0.25"]).eta == 0.25
    with pytest.raises(argparse.ArgumentTypeError, match="finite"):
        number_arg(minimum=0)("nan")
    with pytest.raises(argparse.ArgumentTypeError, match="got 'x'"):
        number_arg()("x")


def test_check_writable_refuses_before_creating_anything(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.npz").mkdir()
    cases = [
        (dict(path=tmp_path / "file" / "out.npz"), "is a file, not a folder"),
        (dict(path=tmp_path / "file", folder=True), "is a file; a folder is needed"),
        (dict(path=tmp_path / "folder.npz"), "is a folder; a file is needed"),
        (dict(path=tmp_path / "clip.txt", suffixes=(".npz",)), "must end in .npz"),
        (dict(path=tmp_path / "file"), "already exists"),
    ]
    before = sorted(tmp_path.rglob("*"))
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message) as raised:
            check_writable(**kwargs)
        assert raised.value.where == str(kwargs["path"])
    assert sorted(tmp_path.rglob("*")) == before
    assert check_writable(tmp_path / "new" / "deep" / "out.npz", suffixes=(".npz",)) == tmp_path / "new/deep/out.npz"
    assert not (tmp_path / "new").exists()                          # checking creates nothing
    assert check_writable(tmp_path / "file", force=True) == tmp_path / "file"


def test_atomic_write_never_replaces_an_output_that_appears_meanwhile(tmp_path):
    target = tmp_path / "sub" / "out.json"
    with pytest.raises(UserError, match="created by another process"):
        with atomic_path(target, force=False) as tmp:
            tmp.write_text("ours")
            target.write_text("theirs")                          # another writer got there first
    assert target.read_text() == "theirs" and os.listdir(target.parent) == ["out.json"]
    with pytest.raises(RuntimeError):                            # a failed block leaves no folder behind
        with atomic_path(tmp_path / "a" / "b" / "x.npz", force=False):
            raise RuntimeError
    assert not (tmp_path / "a").exists()


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_output_lock_refuses_a_second_process_and_dies_with_its_holder(tmp_path):
    out = tmp_path / "renders" / "out"
    holder = _holder(out)
    lock = tmp_path / "renders" / ".out.lock"
    assert lock.read_text().strip() == str(holder.pid)
    with pytest.raises(UserError, match=f"another avatarcine process \\(pid {holder.pid}\\)") as raised:
        with output_lock(out):
            pass
    assert raised.value.where == str(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock.is_file()                                        # kill -9: the file stays, the lock does not
    with output_lock(out):
        assert lock.read_text().strip() == str(os.getpid())
        out.mkdir()
    assert not lock.exists() and out.is_dir()


def test_output_lock_removes_what_it_created_when_the_block_fails(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(UserError):
        with output_lock(out):
            out.mkdir()
            raise UserError("--frames", "outside the clip")
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_only_temporaries_of_dead_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = os.getpid()
    (tmp_path / "clip").mkdir()
    stale = [tmp_path / f".meta.json.~{dead.pid}~abcd1234.json",
             tmp_path / "clip" / f".000001.png.~{dead.pid}~x_y12345.png",
             tmp_path / f"avatarcine_render_pid{dead.pid}_k2j4h5g6"]
    live = [tmp_path / f".meta.json.~{mine}~abcd1234.json", tmp_path / f"avatarcine_render_pid{mine}_aaaa1111",
            tmp_path / f"avatarcine_bench_{dead.pid}_a", tmp_path / "meta.json", tmp_path / ".hidden.json",
            tmp_path / "avatarcine_notes"]
    for p in stale + live:
        (p.mkdir() if p.name.startswith("avatarcine_") else p.write_text("x"))
    (stale[2] / "blender_Ab12Cd").mkdir()
    assert sorted(sweep_stale_temps(tmp_path, recursive=True)) == sorted(stale)
    assert all(p.exists() for p in live) and not any(p.exists() for p in stale)
    assert sweep_stale_temps(tmp_path / "missing") == []


def test_temp_folder_is_removed_on_exit_and_sweeps_stale_ones(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"avatarcine_render_pid{dead.pid}_zzzz9999").mkdir()
    with temp_folder("render") as tmp:
        assert tmp.name.startswith(f"avatarcine_render_pid{os.getpid()}_")
        assert [p.name for p in tmp_path.iterdir()] == [tmp.name]
    assert list(tmp_path.iterdir()) == []
