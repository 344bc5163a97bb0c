"""`avatarcine eval` end to end on a synthetic passes folder (flow/depth EXRs written by Blender)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from motion.cli import main
from _eval_util import lpips_layout_state, moving_square_clip, write_frames, write_passes, write_tiny_clip


@pytest.fixture(scope="module")
def clip():
    return moving_square_clip(n=4)


@pytest.fixture(scope="module")
def gt_dir(tmp_path_factory, clip):
    return write_passes(tmp_path_factory.mktemp("gt"), clip)


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    class Mean(torch.nn.Module):          # FID / FVD features: channel means (any input rank)
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(2).mean(dim=2)

    class Red(torch.nn.Module):           # segmenter: the fully red pixels are the actor
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x[:, :1] > 0.99).float()

    root = tmp_path_factory.mktemp("nets")
    torch.jit.save(torch.jit.script(Mean()), root / "mean.pt")
    torch.jit.save(torch.jit.script(Red()), root / "red.pt")
    torch.save(lpips_layout_state(), root / "lpips_alex.pth")
    write_tiny_clip(root / "clip")
    return root


def run(argv, capsys):
    code = main(["eval", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_report_exact_copy_and_flicker(tmp_path, gt_dir, clip, nets, capsys):
    exact = write_frames(tmp_path / "exact", clip["rgb"])
    flicker_frames = clip["rgb"].astype(int)
    odd = flicker_frames[1::2]
    flicker_frames[1::2] = np.where(odd >= 128, odd - 20, odd + 20)   # odd frames flicker by 20 levels
    flicker = write_frames(tmp_path / "flicker", flicker_frames.astype(np.uint8))
    report = tmp_path / "report"
    code, out, err = run([exact, flicker, gt_dir, "--fid-net", nets / "mean.pt", "--fvd-net", nets / "mean.pt",
                          "--clip-length", 2, "--segmenter", nets / "red.pt", "--lpips", nets / "lpips_alex.pth",
                          "--clip", nets / "clip" / "full", "-o", report], capsys)
    assert code == 0, err
    assert "| PSNR (dB) | ↑ | inf |" in out and "Warping error" in out and "keypoints: no --pose-detector given" in out
    result = json.loads((report / "metrics.json").read_text())
    ex, fl, gt = (result["methods"][k]["summary"] for k in ("exact", "flicker", "ground truth"))
    assert ex["psnr"] == "inf" and ex["ssim"] == pytest.approx(1.0) and ex["l1_actor"] == 0.0
    # exact flow + depth occlusion: the true video has no warping error, so neither has its copy
    assert gt["warping_error"] == pytest.approx(0.0, abs=1e-12)
    assert ex["warping_error"] == pytest.approx(0.0, abs=1e-12) and ex["temporal_l1"] == pytest.approx(0.0, abs=1e-12)
    assert fl["temporal_l1"] == pytest.approx(20 / 255, abs=1e-12)     # integer flow: exact sampling
    assert fl["warping_error"] > 1e-3
    assert ex["adjacent_l1"] == pytest.approx(gt["adjacent_l1"])
    assert ex["fid"] == pytest.approx(0.0, abs=1e-6) and ex["fvd"] == pytest.approx(0.0, abs=1e-6)
    assert fl["fid"] > 1e-4 and ex["mask_iou"] == 1.0
    assert ex["lpips"] == 0.0 and fl["lpips"] > 0
    assert ex["clip_i"] == pytest.approx(1.0, abs=1e-6) and fl["clip_i"] < 1.0
    assert ex["frame_consistency"] == pytest.approx(gt["frame_consistency"], abs=1e-4)
    assert len(result["methods"]["flicker"]["per_frame"]["psnr"]) == 4
    assert result["fid_fvd_samples"] == {"fid": 4, "fvd": 2}
    for name in ("per_frame.png", "summary.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report / "metrics.md").read_text() == out
    code, _, err = run([exact, gt_dir, "-o", report], capsys)           # never overwrite silently
    assert code == 2 and "--force" in err


def test_eval_skips_metrics_whose_passes_are_missing(tmp_path, clip, capsys):
    gt = write_passes(tmp_path / "gt", clip, passes=("rgb",))
    pred = write_frames(tmp_path / "pred", clip["rgb"])
    code, out, _ = run([pred, gt], capsys)
    assert code == 0
    assert "no flow (kind 'flow', EXR) or float depth (kind 'depth_float', EXR) pass" in out
    assert "ground truth has no mask pass" in out
    assert "Warping error" not in out and "SSIM actor" not in out and "Adjacent-frame L1" in out


def test_eval_bad_input_is_one_line_exit_2(tmp_path, gt_dir, clip, capsys):
    short = write_frames(tmp_path / "short", clip["rgb"][:3])
    small = write_frames(tmp_path / "small", clip["rgb"][:, :-2])
    ok = write_frames(tmp_path / "ok", clip["rgb"])
    cases = [
        ([short, gt_dir], "lacks frames 3 of the ground truth's 0..3"),
        ([small, gt_dir], "the ground truth is 40x32"),
        ([tmp_path / "absent", gt_dir], "no such folder"),
        ([short, tmp_path], "not a passes folder"),
        ([gt_dir], "at least one PRED_DIR"),
        ([ok, gt_dir, "--lpips", tmp_path / "none.pth"], "no such weights file"),
    ]
    for argv, message in cases:
        code, _, err = run(argv, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    renamed = tmp_path / "renamed"
    shutil.copytree(gt_dir, renamed)
    meta = json.loads((renamed / "meta.json").read_text())
    meta["passes"]["flow"]["exr_channels"] = ["u", "v"]
    (renamed / "meta.json").write_text(json.dumps(meta))
    code, _, err = run([ok, renamed], capsys)
    assert code == 2 and "has no channel 'u' (channels: dx, dy)" in err
    broken = tmp_path / "broken"
    shutil.copytree(gt_dir, broken)
    (broken / "depth_float" / "000001.exr").unlink()
    code, _, err = run([ok, broken], capsys)
    assert code == 2 and "depth_float/000001.exr: missing pass image" in err


def test_pose_detector_without_rtmlib_is_skipped(tmp_path, gt_dir, clip, capsys):
    try:
        import onnxruntime  # noqa: F401
        import rtmlib  # noqa: F401
        pytest.skip("rtmlib is installed: the skip path does not apply")
    except ImportError:
        pass
    model = tmp_path / "rtmpose.onnx"
    model.write_bytes(b"onnx")
    code, out, _ = run([write_frames(tmp_path / "pred", clip["rgb"]), gt_dir, "--pose-detector", model], capsys)
    assert code == 0 and "pip install rtmlib onnxruntime" in out


def test_pose_detector_glue_with_stand_in_rtmlib(tmp_path, gt_dir, clip, monkeypatch, capsys):
    """Our side of the rtmlib call (input size from the ONNX session, BGR image, padded box from our
    keypoints, COCO-17 -> OpenPose-18) with stand-in modules that return the true keypoints."""
    import sys
    import types

    from test_eval_pose import COCO17
    from render.meta import OPENPOSE18

    meta = json.loads((gt_dir / "meta.json").read_text())
    truth = [np.asarray(f["actors"]["square"]["keypoints2d"]["openpose18"], float) for f in meta["frames"]]
    calls = []

    class Session:
        def __init__(self, path, providers):
            self.path = path

        def get_inputs(self):
            return [types.SimpleNamespace(shape=[1, 3, 256, 192])]

    class RTMPose:
        def __init__(self, onnx_model, model_input_size, backend, device):
            calls.append(("init", model_input_size, backend))

        def __call__(self, image, bboxes):
            t = len([c for c in calls if c[0] == "call"])
            calls.append(("call", image, bboxes))
            coco = np.array([truth[t][OPENPOSE18.index(name), :2] for name in COCO17])
            coco[0] += [3.0, 4.0]                          # the nose is 5 px off in every frame
            return coco[None], np.ones((1, 17))

    monkeypatch.setitem(sys.modules, "onnxruntime", types.SimpleNamespace(InferenceSession=Session))
    monkeypatch.setitem(sys.modules, "rtmlib", types.SimpleNamespace(RTMPose=RTMPose))
    model = tmp_path / "rtmpose.onnx"
    model.write_bytes(b"stand-in")
    report = tmp_path / "report"
    code, _, err = run([write_frames(tmp_path / "pred", clip["rgb"]), gt_dir, "--pose-detector", model, "-o", report], capsys)
    assert code == 0, err
    assert calls[0] == ("init", (192, 256), "onnxruntime")
    _, image, boxes = calls[1]
    y0 = clip["y0"]
    np.testing.assert_array_equal(image[y0, 4], clip["rgb"][0, y0, 4, ::-1])      # BGR, like cv2.imread
    np.testing.assert_allclose(boxes[0], [4 - 1, y0 - 1, 14 + 1, y0 + 10 + 1])    # keypoint box + 10%
    summary = json.loads((report / "metrics.json").read_text())["methods"]["pred"]["summary"]
    # all 18 keypoints visible and detected; errors: the nose (5 px) and the neck, which the detector
    # places midway between the shoulders while our synthetic neck lies elsewhere
    neck_offsets = [np.linalg.norm((k[2, :2] + k[5, :2]) / 2 - k[1, :2]) for k in truth]
    assert summary["keypoint_error_px"] == pytest.approx(np.mean([(5.0 + off) / 18 for off in neck_offsets]))
    scale = 10.0                                                     # the keypoint box is 10 x 10 px
    assert summary["keypoint_error_norm"] == pytest.approx(summary["keypoint_error_px"] / scale)
    assert summary["pck"] == pytest.approx(np.mean([(17 - (off > 0.1 * scale)) / 18 for off in neck_offsets]))
