"""``avatarcine eval PRED_DIR [PRED_DIR ...] GT_DIR``: metrics of generated videos against a
ground-truth passes folder; prints a markdown table, optionally writes JSON + table + plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from motion.errors import number_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="metrics of generated frames against a ground-truth passes folder",
        description="Compare generated videos (folders of NNNNNN.png, or with a frames/ subfolder) with "
                    "a passes folder (rgb; mask, flow and depth_float for the masked and temporal "
                    "metrics). Metrics needing networks run only when their weights are given; "
                    "nothing is downloaded.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="PRED_DIR [PRED_DIR ...] GT_DIR")
    p.add_argument("--lpips", type=Path, metavar="W",
                   help="LPIPS weights: lpips' LPIPS(net='alex'|'vgg') state dict (.pth/.safetensors)")
    p.add_argument("--clip", type=Path, metavar="DIR",
                   help="CLIP folder (save_pretrained of CLIPModel or CLIPVisionModelWithProjection)")
    p.add_argument("--fid-net", type=Path, metavar="F",
                   help="TorchScript image feature network for FID ((N,3,H,W) in [0,1] -> (N,D))")
    p.add_argument("--fvd-net", type=Path, metavar="F",
                   help="TorchScript video feature network for FVD ((N,3,T,H,W) in [0,1] -> (N,D))")
    p.add_argument("--clip-length", type=number_arg(minimum=2, integer=True), default=16,
                   help="frames per FVD clip (default 16)")
    p.add_argument("--pose-detector", metavar="F",
                   help="RTMPose/DWPose ONNX model (needs rtmlib + onnxruntime), or `mediapipe` "
                        "(MediaPipe Pose, offline, with detection rate and mask IoU: pip install 'avatarcine[eval]')")
    p.add_argument("--segmenter", type=Path, metavar="F",
                   help="TorchScript segmenter ((1,3,H,W) in [0,1] -> foreground probability)")
    p.add_argument("--depth-tolerance", type=number_arg(above=0, maximum=1), default=0.05,
                   help="relative depth disagreement that marks a pixel occluded (default 0.05)")
    p.add_argument("-o", "--output", type=Path, metavar="REPORT_DIR",
                   help="write metrics.json, metrics.md, per_frame.png, summary.png here")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from diffusion.evaluation.evaluate import Networks, evaluate
    from diffusion.evaluation.mediapipe_pose import MEDIAPIPE
    from diffusion.evaluation.report import REPORT_FILES, markdown_table, write_report
    from motion.errors import UserError
    from motion.fileio import check_writable

    if len(args.dirs) < 2:
        raise UserError("eval", "give at least one PRED_DIR and the GT_DIR")
    if args.output:  # fail before the (long) evaluation, not after it
        check_writable(args.output, force=True, folder=True)
        for name in REPORT_FILES:
            check_writable(args.output / name, args.force)
    pose = args.pose_detector if args.pose_detector in (None, MEDIAPIPE) else Path(args.pose_detector)
    nets = Networks(args.lpips, args.clip, args.fid_net, args.fvd_net, pose, args.segmenter)
    result = evaluate(args.dirs[:-1], args.dirs[-1], nets, args.depth_tolerance, args.clip_length)
    print(markdown_table(result), end="")
    if args.output:
        write_report(result, args.output, force=args.force)
    return 0
