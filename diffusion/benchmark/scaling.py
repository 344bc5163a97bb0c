"""``avatarcine bench ray``: the same dataset built serially and on Ray, in one run.

Figures: wall seconds of each build, the seconds Ray needs to start and stop with no task
(``startup_s``), the speedup ``serial_s / ray_s``, and the overhead ratio
``(ray_s * cpus) / serial_s - 1``: the CPU time the Ray build spends beyond the serial build's
(0 means perfect scaling over ``cpus``; worker start-up, imports, per-clip Blender scene set-up and
oversubscribed cores show up there). The builds must be byte-identical (Blender's logs aside);
the load average of the machine before and after is recorded, since other work skews timings.
"""

from __future__ import annotations

import filecmp
import os
import time
from pathlib import Path

from motion.errors import UserError
from motion.fileio import save_json


def _differing(a: Path, b: Path) -> list[str]:
    """Files (relative paths) present in only one of two trees or different in content, Blender logs aside."""
    files = {p.relative_to(root) for root in (a, b) for p in root.rglob("*") if p.is_file() and p.name != "blender.log"}
    return sorted(str(f) for f in files if not ((a / f).is_file() and (b / f).is_file()
                                                and filecmp.cmp(a / f, b / f, shallow=False)))


def run_scaling(out: str | Path, size: str, seed: int, address: str) -> dict:
    """Build ``size`` into ``out/serial`` and on the Ray cluster ``address`` into ``out/ray``; figures."""
    from diffusion.benchmark.dataset import build_dataset
    from motion.cluster import connected

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(out, "not empty: the benchmark times fresh builds, give a new folder")
    load_before = os.getloadavg()
    start = time.perf_counter()
    with connected(address) as ray:
        cpus = int(ray.cluster_resources().get("CPU", 0))
    startup = time.perf_counter() - start
    start = time.perf_counter()
    build_dataset(out / "serial", size, seed)
    serial = time.perf_counter() - start
    start = time.perf_counter()
    build_dataset(out / "ray", size, seed, ray=address)
    ray_s = time.perf_counter() - start
    differing = _differing(out / "serial", out / "ray")
    if differing:
        raise UserError(out, f"the Ray build differs from the serial one in {len(differing)} files, e.g. {differing[0]}")
    figures = {"size": size, "seed": seed, "address": address, "cpus": cpus,
               "serial_s": round(serial, 2), "ray_s": round(ray_s, 2), "startup_s": round(startup, 2),
               "speedup": round(serial / ray_s, 3), "overhead_ratio": round(ray_s * cpus / serial - 1, 3),
               "load_average_before": [round(v, 2) for v in load_before],
               "load_average_after": [round(v, 2) for v in os.getloadavg()], "identical": True}
    save_json(out / "figures.json", figures)
    return figures
