"""``avatarcine bench methods``: train every registered method on the benchmark's train split within a
stated budget, generate the held-out clips, score them against the rendered ``rgb`` ground truth.

Rows of the table (for each held-out split): ``retrieval`` (copy the nearest training frame,
``diffusion.benchmark.retrieval``; no training), then the rows each registered method defines with
``Method.bench_rows`` (trained with its recipes within the :class:`Budget`, e.g. the ControlNet
method's stock, trained per-frame and trained temporal rows). A method without rows is listed under
"skipped". Every row is scored by ``diffusion.evaluation.evaluate`` clip by clip; per split the
per-frame values of all clips are pooled (frame-weighted means) and written as an evaluation report
(``OUT/<split>/metrics.{json,md}``, ``per_frame.png``, ``summary.png``). ``OUT/table.json`` and
``OUT/table.md`` hold the one table; ``table.json`` has no timings and no paths, so the same dataset,
budget and seed give the same file on the same machine (CPU). Timings go to ``OUT/timings.json`` and
the foot of ``table.md``. Generations are kept under ``OUT/predictions/<split>/<clip>/<row>/``.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from diffusion.benchmark.dataset import load_manifest
from diffusion.evaluation.evaluate import GROUND_TRUTH, METRICS, summarise
from motion.errors import UserError
from motion.fileio import atomic_path, check_writable, save_json
from motion.progress import progress

EVAL_SPLITS = ("heldout", "heldout_identity")
TABLE = "table.json"
RETRIEVAL = "retrieval"


@dataclass
class Budget:
    """What every trainable method gets (the same for all rows)."""

    steps: int = 200                   # optimizer steps of training
    resolution: int | None = None      # training and generation size (square); None: the dataset's
    batch_size: int = 4
    learning_rate: float = 1e-4
    sample_steps: int = 20             # denoising steps at generation
    cfg: float = 1.0                   # guidance scale at generation (<= 1: off)
    model: str = "tiny"                # SD 1.5-family base
    passes: list[str] = field(default_factory=lambda: ["openpose"])  # condition passes of the ControlNet
    prompt: str = "a person"           # training caption and generation prompt
    device: str | None = None
    pose_detector: str | None = None   # eval's pose detector (an ONNX model or "mediapipe"); None: no pose metrics

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.sample_steps < 1:
            raise UserError("--steps/--batch-size/--sample-steps", "must be at least 1")
        if self.resolution is not None and (self.resolution < 16 or self.resolution % 8):
            raise UserError("--resolution", f"must be a multiple of 8 and at least 16, got {self.resolution}")


@dataclass
class Row:
    """One table row: a name, how to make its frames for one clip, and its training time."""

    name: str
    generate: Callable  # (PassesFolder) -> Generation
    train_seconds: float = 0.0


def method_row(method, name: str, settings, train_seconds: float = 0.0) -> Row:
    """A row generating with ``method`` and ``settings``; its models load once, on first use."""
    components = {}

    def generate(passes):
        if "c" not in components:
            components["c"] = method.load(settings)
        return method.run(passes, settings, components["c"])
    return Row(name, generate, train_seconds)


def train_timed(recipe, config) -> tuple[object, float]:
    """(trainer, seconds) of a training run into a fresh output."""
    from diffusion.training.trainer import train

    start = time.perf_counter()
    trainer = train(recipe, config, force=True)
    return trainer, time.perf_counter() - start


def _retrieval_row(train_dirs: list[Path]) -> Row:
    from diffusion.benchmark.retrieval import TrainingFrames, retrieve

    start = time.perf_counter()
    index = TrainingFrames.index(train_dirs)
    return Row(RETRIEVAL, lambda passes: retrieve(index, passes), time.perf_counter() - start)


def _fit(gen, width: int, height: int):
    """Frames (and condition previews) resized to the ground truth's size when generated at another."""
    import cv2

    if gen.frames.shape[1:3] == (height, width):
        return gen
    resize = lambda images: np.stack([cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA)  # noqa: E731
                                      for im in images])
    return dataclasses.replace(gen, frames=resize(gen.frames), condition_preview=resize(gen.condition_preview))


def _pooled(per_clip: list[dict], name: str) -> dict[str, list[float]]:
    """Per-frame values of one row over all clips of a split, concatenated metric by metric."""
    pooled: dict[str, list[float]] = {}
    for result in per_clip:
        frames = result["frames"]
        values = result["methods"][name]["per_frame"]
        for metric in set(pooled) | set(values):
            pooled.setdefault(metric, []).extend(values.get(metric, [math.nan] * frames))
    return pooled


def _split_result(split: str, per_clip: list[dict], names: list[str]) -> dict:
    """The split's clips pooled into one ``evaluate``-shaped result (for ``write_report``)."""
    methods = {}
    for name in names + [GROUND_TRUTH]:
        per_frame = _pooled(per_clip, name)
        methods[name] = {"pred": name, "summary": {m: summarise(v) for m, v in per_frame.items()},
                         "per_frame": per_frame}
    skipped = {}
    for result in per_clip:
        skipped.update(result["skipped"])
    first = per_clip[0]
    return {"ground_truth": f"{split} ({len(per_clip)} clips)", "frames": sum(r["frames"] for r in per_clip),
            "resolution": first["resolution"], "fps": first["fps"], "depth_tolerance": first["depth_tolerance"],
            "fid_fvd_samples": {"fid": 0, "fvd": 0}, "methods": methods, "skipped": skipped}


def table_markdown(table: dict, timings: dict | None = None) -> str:
    """The table: one block per split, rows = methods, columns = metrics present."""
    from diffusion.evaluation.report import format_value

    lines = [f"Synthetic benchmark: dataset `{table['dataset']['size']}` seed {table['dataset']['seed']}, "
             f"harness seed {table['seed']}; budget {table['budget']['steps']} training steps at "
             f"{table['budget']['resolution']}px, {table['budget']['sample_steps']} sampling steps, "
             f"model `{table['budget']['model']}`", ""]
    for split, info in table["splits"].items():
        rows = [r for r in table["rows"] if r["split"] == split]
        metrics = [m for m in METRICS if any(r["metrics"].get(m) is not None for r in rows)]
        lines += [f"**{split}** ({info['clips']} clips, {info['frames']} frames)", "",
                  "| Method | " + " | ".join(f"{METRICS[m][0]} {'↑' if METRICS[m][1] else '↓'}" for m in metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        for r in rows:
            cells = []
            for m in metrics:
                v = r["metrics"].get(m)
                cells.append(format_value(float(v) if v is not None else math.nan))
            lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        lines.append("")
    if table["skipped"]:
        lines += ["Skipped methods:"] + [f"- {k}: {why}" for k, why in table["skipped"].items()] + [""]
    if timings:
        lines += ["| Timing | train s | generate s/frame |", "|---|---|---|"]
        lines += [f"| {name} | {t['train_s']:.1f} | {t['generate_s_per_frame']:.3f} |" for name, t in timings.items()]
        lines.append("")
    return "\n".join(lines)


def run_harness(dataset_dir: str | Path, out_dir: str | Path, methods: list[str] | None = None,
                budget: Budget | None = None, seed: int = 0, force: bool = False, reports: bool = True) -> dict:
    """Train, generate, evaluate (see the module doc); returns the table written to ``OUT/table.json``.
    ``reports=False`` skips the per-split evaluation reports and their plots (the table is the same)."""
    from diffusion.evaluation.evaluate import Networks, evaluate
    from diffusion.evaluation.mediapipe_pose import MEDIAPIPE
    from diffusion.evaluation.report import json_value, write_report
    from diffusion.io.output import write_generation
    from diffusion.io.passes import PassesFolder
    from diffusion.registry import entries, get_method

    budget = budget or Budget()
    dataset = Path(dataset_dir)
    manifest = load_manifest(dataset)
    out = check_writable(out_dir, force=True, folder=True)
    available = [RETRIEVAL] + sorted(entries())
    chosen = methods or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise UserError("--methods", f"unknown {', '.join(unknown)} (available: {', '.join(available)})")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(out, "already exists; pass --force to overwrite")
        # a finished run has the table; one that failed has its training/ (or predictions/) folder
        if not (out / TABLE).is_file() and not any((out / name).is_dir() for name in ("training", "predictions")):
            raise UserError(out, "is not empty and not a harness output; not touching it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    size = budget.resolution or int(manifest["spec"]["resolution"])
    budget = dataclasses.replace(budget, resolution=size)
    train_dirs = [dataset / c["path"] for c in manifest["splits"]["train"]]

    rows, skipped = [], {}
    for name in chosen:
        if name == RETRIEVAL:
            rows.append(_retrieval_row(train_dirs))
        else:
            method_rows = get_method(name).bench_rows(budget, train_dirs, out / "training" / name, seed, size)
            rows += method_rows
            if not method_rows:
                skipped[name] = "the method defines no benchmark rows"

    names = [r.name for r in rows]
    detector = budget.pose_detector
    nets = Networks(pose_detector=detector if detector in (None, MEDIAPIPE) else Path(detector))
    generate_seconds = {r.name: 0.0 for r in rows}
    frame_count = 0
    table_rows, splits_info = [], {}
    for split in EVAL_SPLITS:
        clips = manifest["splits"][split]
        if not clips:
            continue
        per_clip = []
        for clip in progress(clips, desc=f"bench {split}", total=len(clips)):
            gt = dataset / clip["path"]
            passes = PassesFolder.open(gt)
            w, h = passes.resolution
            pred_dirs = []
            for r in rows:
                start = time.perf_counter()
                gen = _fit(r.generate(passes), w, h)
                generate_seconds[r.name] += time.perf_counter() - start
                pred = out / "predictions" / split / clip["id"] / r.name.replace(" ", "_")
                write_generation(gen, pred, force=True)
                pred_dirs.append(pred)
            frame_count += len(passes.indices)
            result = evaluate(pred_dirs, gt, nets)
            result["methods"] = {name: result["methods"][Path(p).name] for name, p in zip(names, pred_dirs)} | {
                GROUND_TRUTH: result["methods"][GROUND_TRUTH]}
            per_clip.append(result)
        merged = _split_result(split, per_clip, names)
        if reports:
            write_report(merged, out / split, force=True)
        splits_info[split] = {"clips": len(clips), "frames": merged["frames"]}
        for name in names + [GROUND_TRUTH]:
            summary = merged["methods"][name]["summary"]
            table_rows.append({"method": name, "split": split,
                               "metrics": json_value({m: summary[m] for m in METRICS if m in summary})})
    table = {"dataset": {k: manifest[k] for k in ("format", "size", "seed")}, "seed": int(seed),
             "budget": dataclasses.asdict(budget), "splits": splits_info, "rows": table_rows, "skipped": skipped}
    timings = {r.name: {"train_s": r.train_seconds, "generate_s_per_frame": generate_seconds[r.name] / max(frame_count, 1)}
               for r in rows}
    save_json(out / TABLE, table)
    save_json(out / "timings.json", timings)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(table_markdown(table, timings))
    return table
