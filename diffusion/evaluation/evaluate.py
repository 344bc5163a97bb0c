"""Run every metric whose inputs are present on one or more generated videos against one
ground-truth passes folder, in a single streaming pass over the frames (memory bounded by one
FVD clip, whatever the video length)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion.evaluation import image_metrics as im
from diffusion.evaluation import temporal_metrics as tm
from diffusion.evaluation.inputs import GroundTruth, prediction_frames
from render.images import read_rgb
from motion.errors import UserError
from motion.progress import progress

# name -> (label, higher is better, unit/scale note). Order = order in the table.
METRICS = {
    "l1": ("L1", False, "[0,1]"),
    "psnr": ("PSNR", True, "dB"),
    "ssim": ("SSIM", True, ""),
    "l1_actor": ("L1 actor", False, "[0,1]"),
    "psnr_actor": ("PSNR actor", True, "dB"),
    "ssim_actor": ("SSIM actor", True, ""),
    "l1_background": ("L1 background", False, "[0,1]"),
    "psnr_background": ("PSNR background", True, "dB"),
    "ssim_background": ("SSIM background", True, ""),
    "lpips": ("LPIPS", False, ""),
    "clip_i": ("CLIP-I", True, "cosine"),
    "fid": ("FID", False, ""),
    "fvd": ("FVD", False, ""),
    "warping_error": ("Warping error", False, "MSE [0,1]"),
    "temporal_l1": ("Temporal L1", False, "[0,1]"),
    "adjacent_l1": ("Adjacent-frame L1", False, "0-255"),
    "adjacent_mse": ("Adjacent-frame MSE", False, "0-255"),
    "frame_consistency": ("Frame consistency (CLIP)", True, "100 cos"),
    "keypoint_error_px": ("Keypoint error", False, "px"),
    "keypoint_error_norm": ("Keypoint error / box", False, ""),
    "pck": ("PCK@0.1", True, ""),
    "detection_rate": ("Detection rate", True, ""),
    "mask_iou": ("Mask IoU", True, ""),
}
GROUND_TRUTH = "ground truth"   # the reference column: the real video's own temporal statistics


@dataclass
class Networks:
    """User-supplied networks (paths); None = the metrics that need it are skipped."""
    lpips: Path | None = None
    clip: Path | None = None
    fid_net: Path | None = None
    fvd_net: Path | None = None
    pose_detector: Path | str | None = None      # an ONNX model, or "mediapipe"
    segmenter: Path | None = None


def summarise(values: list[float]) -> float:
    """Mean over defined values (nan skipped); inf if any is inf (e.g. PSNR of identical frames)."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan
    return math.inf if any(math.isinf(v) for v in vals) else float(np.mean(vals))


class _Series:
    """Per-frame values of one video, keyed by metric."""

    def __init__(self, n: int):
        self.n = n
        self.per_frame: dict[str, list[float]] = {}
        self.summary: dict[str, float] = {}
        self.features: dict[str, list[np.ndarray]] = {}
        self.fvd_clip: list[np.ndarray] = []       # frames of the FVD clip being filled

    def put(self, metric: str, t: int, value: float) -> None:
        self.per_frame.setdefault(metric, [math.nan] * self.n)[t] = float(value)

    def keep(self, kind: str, feature: np.ndarray) -> None:
        self.features.setdefault(kind, []).append(np.asarray(feature))

    def stacked(self, kind: str) -> np.ndarray:
        return np.concatenate(self.features[kind], axis=0)


class _Networks:
    """Loaded networks and the reasons for the ones that cannot run."""

    def __init__(self, nets: Networks, gt: GroundTruth, n: int, clip_length: int):
        from diffusion.evaluation import feature_metrics as fm
        from diffusion.evaluation import mediapipe_pose
        from diffusion.evaluation import pose_metrics as pm

        self.skipped: dict[str, str] = {}
        self.clip_length = clip_length
        self.lpips = fm.load_lpips(nets.lpips) if nets.lpips else None
        self.clip = fm.ClipImageEncoder(nets.clip) if nets.clip else None
        self.fid = fm.load_torchscript(nets.fid_net) if nets.fid_net else None
        self.fvd = fm.load_torchscript(nets.fvd_net) if nets.fvd_net else None
        self.segmenter = fm.load_torchscript(nets.segmenter) if nets.segmenter else None
        self.detector = None
        mediapipe = nets.pose_detector == mediapipe_pose.MEDIAPIPE
        if nets.pose_detector is not None:
            if mediapipe:
                why, make = mediapipe_pose.mediapipe_missing(), mediapipe_pose.MediaPipePose
            else:
                why, make = pm.optional_detector_missing(), lambda: pm.KeypointDetector(nets.pose_detector)
                if not Path(nets.pose_detector).is_file():
                    raise UserError(nets.pose_detector, "no such ONNX pose model")
            self.detector = None if why else make()
            if why:
                self.skipped["keypoints"] = f"--pose-detector {why}"
        # mask IoU from the detector's masks when no segmenter is given (MediaPipe segments)
        self.detector_masks = self.segmenter is None and mediapipe and self.detector is not None
        for key, present, why in (
            ("lpips", self.lpips, "no --lpips weights given"),
            ("clip_i, frame_consistency", self.clip, "no --clip folder given"),
            ("fid", self.fid, "no --fid-net given"),
            ("fvd", self.fvd, "no --fvd-net given"),
        ):
            if present is None:
                self.skipped[key] = why
        if self.segmenter is None and not self.detector_masks:
            self.skipped["mask_iou"] = "no --segmenter given"
        if nets.pose_detector is None:
            self.skipped["keypoints"] = "no --pose-detector given"
        elif self.detector is not None and not mediapipe:
            self.skipped["detection_rate"] = "the ONNX detector is top-down: it finds no persons"
        if self.fid is not None and n < 2:
            self.fid, self.skipped["fid"] = None, "needs at least 2 frames"
        if self.fvd is not None and n < 2 * clip_length:
            self.fvd, self.skipped["fvd"] = None, f"needs at least 2 clips of {clip_length} frames"
        if (self.segmenter is not None or self.detector_masks) and gt.mask_pass is None:
            self.segmenter, self.detector_masks = None, False
            self.skipped["mask_iou"] = "ground truth has no mask pass"
        if self.detector is not None and not any(f.get("actors") for f in gt.meta["frames"]):
            self.detector, self.skipped["keypoints"] = None, "ground truth has no projected keypoints"
            if self.detector_masks:
                self.detector_masks, self.skipped["mask_iou"] = False, "ground truth has no projected keypoints"


def _keep_features(net: _Networks, s: _Series, rgb: np.ndarray, rgb_u8: np.ndarray, nets: Networks) -> None:
    """Set-level features of one frame: CLIP embedding, FID features, FVD clip (when full)."""
    from diffusion.evaluation import feature_metrics as fm

    if net.clip is not None:
        s.keep("clip", net.clip.embed([rgb_u8]))
    if net.fid is not None:
        s.keep("fid", fm.network_features(net.fid, fm.to_tensor([rgb]), nets.fid_net))
    if net.fvd is not None:
        s.fvd_clip.append(rgb)
        if len(s.fvd_clip) == net.clip_length:
            clip = fm.to_tensor(s.fvd_clip).permute(1, 0, 2, 3).unsqueeze(0)   # (1, 3, T, H, W)
            s.keep("fvd", fm.network_features(net.fvd, clip, nets.fvd_net))
            s.fvd_clip = []


def _frame_metrics(s: _Series, t: int, pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None) -> None:
    smap = im.ssim_map(pred, gt)
    s.put("l1", t, im.l1(pred, gt))
    s.put("psnr", t, im.psnr(pred, gt))
    s.put("ssim", t, im.mean_ssim(smap))
    if mask is not None:
        for name, m in (("actor", mask), ("background", ~mask)):
            s.put(f"l1_{name}", t, im.l1(pred, gt, m))
            s.put(f"psnr_{name}", t, im.psnr(pred, gt, m))
            s.put(f"ssim_{name}", t, im.mean_ssim(smap, m))


def _self_temporal(s: _Series, t: int, prev: np.ndarray, cur: np.ndarray, warp, valid) -> None:
    """Metrics of a video against its own previous frame (pair t-1, t is stored at t-1)."""
    l1, mse = tm.adjacent_differences(prev, cur)
    s.put("adjacent_l1", t - 1, l1)
    s.put("adjacent_mse", t - 1, mse)
    if valid is not None:
        s.put("warping_error", t - 1, tm.warping_error(prev, cur, warp, valid))


def evaluate(pred_dirs: list[str | os.PathLike], gt_dir: str | os.PathLike, nets: Networks | None = None,
             depth_tolerance: float = tm.DEPTH_REL_TOL, clip_length: int = 16) -> dict:
    """All available metrics of each generated video against the ground truth (see report.py for the layout)."""
    from diffusion.evaluation import feature_metrics as fm
    from diffusion.evaluation import pose_metrics as pm

    nets = nets or Networks()
    gt = GroundTruth(gt_dir)
    n = len(gt)
    w, h = gt.folder.resolution
    if min(w, h) < im.SSIM_WINDOW:
        raise UserError(gt.root / "meta.json", f"resolution {w}x{h} is below the {im.SSIM_WINDOW}-pixel SSIM window")
    names = [Path(p).resolve().name for p in pred_dirs]
    if len(set(names)) != len(names) or GROUND_TRUTH in names:
        names = [f"{i}:{name}" for i, name in enumerate(names)]
    preds = {}
    for name, pred_dir in zip(names, pred_dirs):
        preds[name] = prediction_frames(pred_dir, gt.indices)
    net = _Networks(nets, gt, n, clip_length)
    skipped = dict(net.skipped)
    has_mask = gt.mask_pass is not None
    if not has_mask:
        skipped["l1/psnr/ssim actor & background"] = "ground truth has no mask pass"
    missing = [what for what, name in (("flow (kind 'flow', EXR)", gt.flow_pass),
                                       ("float depth (kind 'depth_float', EXR)", gt.depth_pass)) if name is None]
    temporal = n >= 2 and not missing
    if n < 2:
        skipped["temporal metrics"] = "need at least 2 frames"
    elif missing:
        skipped["warping_error, temporal_l1"] = f"ground truth has no {' or '.join(missing)} pass"

    series = {name: _Series(n) for name in names}
    ref = _Series(n)
    prev_gt = prev_depth = None
    prev_pred: dict[str, np.ndarray] = {}
    for t in progress(range(n), desc="evaluating", total=n, unit="frame"):
        gt_rgb = gt.rgb(t)
        mask = gt.mask(t) if has_mask else None
        depth = gt.depth(t) if temporal else None
        warp = valid = None
        if temporal and t > 0:
            flow = gt.flow(t - 1)
            warp, valid = tm.BackwardWarp(flow), tm.valid_mask(flow, prev_depth, depth, depth_tolerance)
        if t > 0:
            _self_temporal(ref, t, prev_gt, gt_rgb, warp, valid)
        _keep_features(net, ref, gt_rgb, np.rint(gt_rgb * 255).astype(np.uint8), nets)
        keypoints = gt.keypoints(t) if net.detector is not None else {}

        for name, frames in preds.items():
            s = series[name]
            pred = read_rgb(frames[t], "PNG")
            if pred.shape[:2] != (h, w):
                raise UserError(frames[t], f"is {pred.shape[1]}x{pred.shape[0]}, the ground truth is {w}x{h}")
            pred_u8 = np.rint(pred * 255).astype(np.uint8)
            _frame_metrics(s, t, pred, gt_rgb, mask)
            if t > 0:
                _self_temporal(s, t, prev_pred[name], pred, warp, valid)
                if valid is not None:
                    s.put("temporal_l1", t - 1, tm.temporal_l1(prev_pred[name], pred, prev_gt, gt_rgb, warp, valid))
            prev_pred[name] = pred
            if net.lpips is not None:
                s.put("lpips", t, float(net.lpips(fm.to_tensor([pred]), fm.to_tensor([gt_rgb]))[0]))
            _keep_features(net, s, pred, pred_u8, nets)
            if net.segmenter is not None:
                s.put("mask_iou", t, pm.mask_iou(pm.segment(net.segmenter, pred, nets.segmenter), mask))
            if keypoints:
                found = [(kp, net.detector.detect(pred_u8, box))
                         for kp in keypoints.values() if (box := pm.keypoint_box(kp)) is not None]
                errors = [pm.keypoint_errors(kp, d.keypoints, d.scores) for kp, d in found]
                for metric in ("keypoint_error_px", "keypoint_error_norm", "pck"):
                    s.put(metric, t, summarise([e[metric] for e in errors]))
                if found and found[0][1].person is not None:
                    s.put("detection_rate", t, float(np.mean([d.person for _, d in found])))
                if found and net.detector_masks:
                    s.put("mask_iou", t, pm.mask_iou(np.any([d.mask for _, d in found], axis=0), mask))
        prev_gt, prev_depth = gt_rgb, depth

    for s in [*series.values(), ref]:
        s.summary = {m: summarise(v) for m, v in s.per_frame.items()}
    if net.clip is not None:
        gt_emb = ref.stacked("clip")
        ref.per_frame["frame_consistency"] = fm.clip_frame_consistency(gt_emb).tolist() + [math.nan]
        ref.summary["frame_consistency"] = summarise(ref.per_frame["frame_consistency"])
        for s in series.values():
            emb = s.stacked("clip")
            s.per_frame["clip_i"] = fm.clip_image_similarity(emb, gt_emb).tolist()
            s.per_frame["frame_consistency"] = fm.clip_frame_consistency(emb).tolist() + [math.nan]
            for m in ("clip_i", "frame_consistency"):
                s.summary[m] = summarise(s.per_frame[m])
    for kind in ("fid", "fvd"):
        if getattr(net, kind) is not None:
            for s in series.values():
                s.summary[kind] = fm.frechet_distance_of_features(s.stacked(kind), ref.stacked(kind))
    samples = {"fid": n if net.fid is not None else 0,
               "fvd": (n // clip_length) if net.fvd is not None else 0}
    methods = {name: {"pred": str(Path(pred_dirs[i])), "summary": s.summary, "per_frame": s.per_frame}
               for i, (name, s) in enumerate(series.items())}
    methods[GROUND_TRUTH] = {"pred": str(gt.root), "summary": ref.summary, "per_frame": ref.per_frame}
    return {"ground_truth": str(gt.root), "frames": n, "resolution": [w, h], "fps": gt.folder.fps,
            "depth_tolerance": depth_tolerance, "fid_fvd_samples": samples,
            "methods": methods, "skipped": skipped}
