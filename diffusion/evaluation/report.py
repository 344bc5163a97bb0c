"""The evaluation report: ``metrics.json`` (everything), ``metrics.md`` (the table the command
prints), ``per_frame.png`` (one curve per video and metric) and ``summary.png`` (one bar per video
and metric). JSON writes inf as the string "inf" and undefined values as null."""

from __future__ import annotations

import math
import os
from pathlib import Path

from diffusion.evaluation.evaluate import GROUND_TRUTH, METRICS
from motion.fileio import atomic_path, check_writable, save_json

REPORT_FILES = ("metrics.json", "metrics.md", "per_frame.png", "summary.png")
SET_METRICS = ("fid", "fvd")   # computed on the whole video, no per-frame value


def json_value(v):
    if isinstance(v, float):
        return None if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else v)
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_value(x) for x in v]
    return v


def format_value(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "–"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"


def markdown_table(result: dict) -> str:
    """Metrics as rows, videos as columns (the ground-truth column holds its own temporal statistics)."""
    methods = list(result["methods"])
    rows = [m for m in METRICS if any(m in result["methods"][k]["summary"] for k in methods)]
    w, h = result["resolution"]
    lines = [f"Evaluation against `{result['ground_truth']}` ({result['frames']} frames, {w}x{h})", "",
             "| Metric | | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for m in rows:
        label, higher, unit = METRICS[m]
        name = f"{label} ({unit})" if unit else label
        values = [format_value(result["methods"][k]["summary"].get(m)) for k in methods]
        lines.append(f"| {name} | {'↑' if higher else '↓'} | " + " | ".join(values) + " |")
    if result["skipped"]:
        lines += ["", "Skipped:"] + [f"- {k}: {why}" for k, why in result["skipped"].items()]
    samples = result.get("fid_fvd_samples", {})
    if samples.get("fid") or samples.get("fvd"):
        lines += ["", f"FID over {samples['fid']} frames, FVD over {samples['fvd']} clips per video "
                  "(biased when fewer than the feature dimension)."]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")           # files only, no display
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))   # room for a figure legend
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _grid(plt, n: int, cols: int, cell: tuple[float, float]):
    """A figure with ``n`` panels in rows of ``cols`` (unused panels hidden)."""
    rows = max(-(-n // cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(cell[0] * cols, cell[1] * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes


def _plot_per_frame(result: dict, path: Path) -> None:
    plt = _pyplot()
    metrics = [m for m in METRICS if m not in SET_METRICS and any(
        any(math.isfinite(x) for x in r["per_frame"].get(m, [])) for r in result["methods"].values())]
    fig, axes = _grid(plt, len(metrics), 2, (6, 2.4))
    for ax, m in zip(axes.ravel(), metrics):
        for name, r in result["methods"].items():
            if m in r["per_frame"]:
                ax.plot(r["per_frame"][m], label=name, linestyle="--" if name == GROUND_TRUTH else "-")
        label, higher, _ = METRICS[m]
        ax.set_title(f"{label} {'↑' if higher else '↓'}", fontsize=9)
        ax.set_xlabel("frame (pairs: first frame)", fontsize=7)
        ax.grid(alpha=0.3)
    handles = {label: h for ax in axes.ravel() for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=len(handles), fontsize=8)
    _save(plt, fig, path)


def _plot_summary(result: dict, path: Path) -> None:
    plt = _pyplot()
    names = list(result["methods"])
    metrics = [m for m in METRICS if any(math.isfinite(r["summary"].get(m, math.nan)) for r in result["methods"].values())]
    fig, axes = _grid(plt, len(metrics), 3, (4, 2.6))
    for ax, m in zip(axes.ravel(), metrics):
        values = [result["methods"][k]["summary"].get(m, math.nan) for k in names]
        ax.bar(range(len(names)), [v if math.isfinite(v) else 0.0 for v in values],
               color=[f"C{i}" for i in range(len(names))])
        for i, v in enumerate(values):
            ax.text(i, 0, format_value(v), ha="center", va="bottom", fontsize=7)
        label, higher, _ = METRICS[m]
        ax.set_title(f"{label} {'↑' if higher else '↓'}", fontsize=9)
        ax.set_xticks(range(len(names)), names, fontsize=7, rotation=20)
    _save(plt, fig, path)


def write_report(result: dict, out_dir: str | os.PathLike, force: bool = False) -> dict[str, Path]:
    """Write the four report files into ``out_dir`` (refusing to overwrite any without ``force``)."""
    out = Path(out_dir)
    paths = {name: check_writable(out / name, force) for name in REPORT_FILES}
    save_json(paths["metrics.json"], json_value(result))
    with atomic_path(paths["metrics.md"]) as tmp:
        tmp.write_text(markdown_table(result))
    _plot_per_frame(result, paths["per_frame.png"])
    _plot_summary(result, paths["summary.png"])
    return paths
