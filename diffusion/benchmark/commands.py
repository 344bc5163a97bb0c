"""``avatarcine bench dataset`` and ``avatarcine bench methods``: the synthetic ground-truth benchmark."""

from __future__ import annotations

import argparse

from motion.cluster import add_arguments


def register(sub: argparse._SubParsersAction) -> None:
    """No top-level commands: the benchmark lives under ``avatarcine bench``."""


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    d = bench_sub.add_parser(
        "dataset", help="render the synthetic ground-truth dataset (identities x motions x cameras, with rgb)",
        description="Seeded identities (Anny shape + skin and clothing colours) perform generated motions and "
                    "motion-file windows under seeded cameras; every clip is rendered with all condition passes, "
                    "flow and the rgb ground truth. Splits: train, heldout (new motions and cameras), "
                    "heldout_identity (new people). The same seed gives byte-identical images.")
    d.add_argument("--size", choices=("smoke", "small", "full", "default-avatar"), default="smoke",
                   help="smoke: 4 clips x 4 frames at 48 px (seconds); small: 26 x 24 at 128 px (minutes); "
                        "full: 176 x 72 at 512 px (hours); default-avatar: 36 x 16 at 128 px of the shipped default "
                        "avatar only (the embedded model's data; rgb, plate, mesh, mask, skeleton, depth, flow)")
    d.add_argument("--seed", type=int, default=0, help="dataset seed (identities, motions, cameras, pairing)")
    d.add_argument("--motion-file", action="append", default=[], metavar="FILE",
                   help="also cut motions from this file (any format `avatarcine motion info` reads); repeatable")
    d.add_argument("-o", "--output", required=True, metavar="DIR", help="dataset folder")
    d.add_argument("--force", action="store_true", help="replace an existing dataset of another size/seed")
    d.add_argument("--verbose", action="store_true",
                   help="show Blender's own output (default: each clip's logs/blender.log)")
    add_arguments(d)
    d.set_defaults(func=cmd_dataset)

    r = bench_sub.add_parser(
        "ray", help="the dataset built serially and on Ray in one run: speedup and overhead ratio",
        description="Builds the dataset twice into fresh folders, OUT/serial and OUT/ray (checked byte-identical), "
                    "and writes OUT/figures.json: wall seconds, Ray start-up, speedup, overhead ratio, load average.")
    r.add_argument("--size", choices=("smoke", "small", "full"), default="small")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--ray", default="local", metavar="ADDRESS",
                   help="cluster address (default: a Ray instance started on this machine)")
    r.add_argument("-o", "--output", required=True, metavar="DIR", help="a new folder for both builds")
    r.set_defaults(func=cmd_ray)

    m = bench_sub.add_parser(
        "methods", help="train each method on the train split, evaluate on held-out splits: one table + plots",
        description="Rows: nearest-training-frame retrieval, the stock ControlNet per frame, a ControlNet trained "
                    "on the train split (per frame and with the method's temporal settings). The same seed gives "
                    "the same table.json on CPU.")
    m.add_argument("dataset", metavar="DATASET_DIR", help="a folder written by `avatarcine bench dataset`")
    m.add_argument("--methods", nargs="+", metavar="NAME", help="subset of: retrieval and the registered methods")
    m.add_argument("--steps", type=int, default=200, help="training optimizer steps per trainable method")
    m.add_argument("--resolution", type=int, help="training and generation size in px (default: the dataset's)")
    m.add_argument("--batch-size", type=int, default=4)
    m.add_argument("--learning-rate", type=float, default=1e-4)
    m.add_argument("--sample-steps", type=int, default=20, help="denoising steps at generation")
    m.add_argument("--cfg", type=float, default=1.0, help="guidance scale at generation (<= 1: off)")
    m.add_argument("--model", default="tiny", help="SD 1.5-family base: hub id, folder, or tiny (CPU-sized, random)")
    m.add_argument("--passes", nargs="+", default=["openpose"], help="condition passes of the ControlNet")
    m.add_argument("--prompt", default="a person", help="training caption and generation prompt")
    m.add_argument("--device", help="cuda | mps | cpu (default: best available)")
    m.add_argument("--seed", type=int, default=0, help="training and sampling seed")
    m.add_argument("--pose-detector", metavar="ONNX|mediapipe",
                   help="score pose with this detector, as `avatarcine eval --pose-detector` (default: no pose metrics)")
    m.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder")
    m.add_argument("--no-plots", action="store_true",
                   help="write only the table (no per-split evaluation reports and plots)")
    m.add_argument("--force", action="store_true", help="replace an existing report folder")
    m.set_defaults(func=cmd_methods)


def cmd_dataset(args) -> int:
    import json
    import time

    from diffusion.benchmark.dataset import build_dataset

    start = time.perf_counter()
    manifest = build_dataset(args.output, args.size, args.seed, args.motion_file, force=args.force,
                             verbose=args.verbose, ray=args.ray, retries=args.retries)
    splits = json.loads(manifest.read_text())["splits"]
    counts = ", ".join(f"{name} {len(clips)}" for name, clips in splits.items())
    print(f"dataset {args.size} seed {args.seed}: clips {counts} -> {manifest} ({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_ray(args) -> int:
    import json

    from diffusion.benchmark.scaling import run_scaling

    print(json.dumps(run_scaling(args.output, args.size, args.seed, args.ray), indent=1))
    return 0


def clip_task(out: str, clip_id: str, verbose: bool) -> str:
    """One clip of a dataset build on a Ray worker (``motion.cluster``); the plan is read from the
    dataset folder, which every node sees."""
    from pathlib import Path

    from diffusion.benchmark.dataset import build_clip, planned_clip

    return str(build_clip(Path(out), *planned_clip(Path(out), clip_id), verbose))


def cmd_methods(args) -> int:
    import time
    from pathlib import Path

    from diffusion.benchmark.harness import Budget, run_harness, table_markdown

    budget = Budget(steps=args.steps, resolution=args.resolution, batch_size=args.batch_size,
                    learning_rate=args.learning_rate, sample_steps=args.sample_steps, cfg=args.cfg, model=args.model,
                    passes=args.passes, prompt=args.prompt, device=args.device,
                    pose_detector=args.pose_detector)
    start = time.perf_counter()
    table = run_harness(args.dataset, args.output, args.methods, budget, seed=args.seed, force=args.force,
                        reports=not args.no_plots)
    print(table_markdown(table))
    print(f"report: {Path(args.output) / 'table.md'} ({time.perf_counter() - start:.1f} s)")
    return 0
