"""The method harness on the smoke dataset: the table with its baseline rows, the same table for the
same seed, and the retrieval baseline checked against the dataset's own frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from _benchmark_util import run_cli, smoke_dataset
from diffusion.benchmark.dataset import load_manifest
from diffusion.benchmark.retrieval import MISSING, TrainingFrames, pose_distances, retrieve
from diffusion.io.passes import PassesFolder

SMOKE_RUN = ("--steps", "2", "--batch-size", "2", "--sample-steps", "2", "--seed", "0")


@pytest.fixture(scope="module")
def dataset():
    return smoke_dataset(0)


def test_pose_distance_by_hand():
    query = np.array([[0.0, 0.0, 1], [0.5, 0.5, 1], [0.2, 0.2, 0]])
    keys = np.array([[[0.3, 0.4, 1], [0.5, 0.5, 1], [0.9, 0.9, 0]],     # 0.5 + 0 over 2 joints
                     [[0.0, 0.0, 1], [0.0, 0.0, 0], [0.2, 0.2, 1]]])    # 0 + 2 one-sided over 3
    np.testing.assert_allclose(pose_distances(query, keys), [0.25, 2 * MISSING / 3])


def test_retrieval_of_a_training_clip_returns_its_own_frames(dataset):
    manifest = load_manifest(dataset)
    train = [dataset / c["path"] for c in manifest["splits"]["train"]]
    index = TrainingFrames.index(train)
    for clip in train:
        folder = PassesFolder.open(clip)
        gen = retrieve(index, folder)
        assert all(m["distance"] == 0.0 and m["clip"] == clip.name for m in gen.record["matches"])
        expected = np.stack([np.rint(folder.read("rgb", i) * 255) for i in folder.indices]).astype(np.uint8)
        np.testing.assert_array_equal(gen.frames, expected)


def test_harness_table_has_baselines_and_repeats_with_the_seed(dataset, tmp_path, monkeypatch, capsys):
    assert run_cli(monkeypatch, "bench", "methods", dataset, *SMOKE_RUN, "-o", tmp_path / "a") == 0
    assert run_cli(monkeypatch, "bench", "methods", dataset, *SMOKE_RUN, "--no-plots", "-o", tmp_path / "b") == 0
    printed = capsys.readouterr().out
    table = json.loads((tmp_path / "a" / "table.json").read_text())
    assert (tmp_path / "a" / "table.json").read_text() == (tmp_path / "b" / "table.json").read_text()
    rows = {(r["method"], r["split"]): r["metrics"] for r in table["rows"]}
    for split in ("heldout", "heldout_identity"):
        for method in ("retrieval", "controlnet-pretrained (per-frame)", "controlnet (per-frame)", "controlnet"):
            metrics = rows[(method, split)]
            assert math.isfinite(metrics["psnr"]) and -1 <= metrics["ssim_actor"] <= 1
            assert metrics["warping_error"] is not None          # flow + depth rendered: temporal metrics run
        assert "| retrieval |" in printed
        assert (tmp_path / "a" / split / "summary.png").is_file()
    # the table's numbers are the evaluation's numbers: recompute one from a generated clip
    from diffusion.evaluation.evaluate import evaluate

    clip = load_manifest(dataset)["splits"]["heldout"][0]
    pred = tmp_path / "a" / "predictions" / "heldout" / clip["id"] / "retrieval"
    alone = evaluate([pred], dataset / clip["path"])
    assert alone["methods"]["retrieval"]["summary"]["psnr"] == pytest.approx(rows[("retrieval", "heldout")]["psnr"],
                                                                              abs=1e-5)
    assert table["budget"]["steps"] == 2 and table["budget"]["resolution"] == 48


def test_harness_refuses_bad_input(dataset, tmp_path, monkeypatch, capsys):
    assert run_cli(monkeypatch, "bench", "methods", tmp_path, "-o", tmp_path / "x") == 2
    assert "not a benchmark dataset" in capsys.readouterr().err
    assert run_cli(monkeypatch, "bench", "methods", dataset, "--methods", "nope", "-o", tmp_path / "y") == 2
    assert "unknown nope" in capsys.readouterr().err
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "keep.txt").write_text("mine")
    assert run_cli(monkeypatch, "bench", "methods", dataset, "-o", tmp_path / "z") == 2
    assert (tmp_path / "z" / "keep.txt").read_text() == "mine"
    (tmp_path / "failed" / "training" / "controlnet").mkdir(parents=True)   # what a run failing in training leaves
    assert run_cli(monkeypatch, "bench", "methods", dataset, "--methods", "retrieval", "--no-plots",
                   "-o", tmp_path / "failed", "--force") == 0
    assert (tmp_path / "failed" / "table.json").is_file() and not (tmp_path / "failed" / "training").exists()
