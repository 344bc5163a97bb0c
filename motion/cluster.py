"""Independent tasks on a Ray cluster: ``--ray [ADDRESS]`` of ``render``, ``generate`` and ``bench dataset``.

A :class:`Task` is one unit of work (a clip, a scene, a passes folder) that writes its own output on
a path every node sees; ``fn`` is a module-level function, found by name on the workers. Each
attempt runs in a fresh worker process (``max_calls=1``: Blender's ``bpy`` and a loaded model are
process-wide), asks Ray for one CPU or one GPU, and writes through the command's usual atomic,
resumable code, which locks its output (``motion.fileio.output_lock``), so a clip never runs
twice at once and a retried attempt skips what the failed one finished. A failed attempt (an
exception, a killed or lost worker) is retried ``retries`` times; the driver shows one progress
bar over all tasks and, at the end, names every task that still failed (a UserError: exit code 2).
Without a cluster the same tasks run one after another in this process, reported the same way.

Ray is the optional extra ``avatarcine[ray]``; without ``--ray`` nothing here is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from typing import Any, Callable

from motion.errors import UserError, number_arg
from motion.progress import progress

RETRIES = 2
INSTALL = "pip install 'avatarcine[ray]'"


@dataclasses.dataclass(frozen=True)
class Task:
    """``fn(*args)`` under the name ``name`` (how failures are reported). ``device``: ``cpu`` asks Ray
    for one CPU, ``gpu`` for one GPU, ``any`` for a GPU when the cluster has one, else a CPU."""

    name: str
    fn: Callable
    args: tuple = ()
    device: str = "cpu"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]`` and ``--retries N`` on a command."""
    group = parser.add_argument_group("cluster (Ray)")
    group.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run the work as Ray tasks (one per scene, passes folder or clip): `auto` (the "
                            "running cluster), HOST:PORT, or no value (a Ray instance on this machine); outputs "
                            "must be on a path every node sees")
    group.add_argument("--retries", type=number_arg(minimum=0, maximum=100, integer=True), default=RETRIES, metavar="N",
                       help=f"with --ray: attempts after a task's first failure (default: {RETRIES})")


def require_ray():
    """The ``ray`` module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray", f"Ray is not installed; install it with: {INSTALL}") from None
    return ray


def run_tasks(tasks: list[Task], address: str | None, retries: int = RETRIES, desc: str = "tasks") -> dict[str, Any]:
    """Run ``tasks`` on the Ray cluster at ``address`` (``local``: start one on this machine, stopped
    at the end), or one after another in this process when ``address`` is None (bad input fails a
    task there, without retries); returns each task's result by name. Raises a UserError naming the
    tasks that failed, once all the others are done."""
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique: {names}")
    if address is None:
        results, failed = _run_here(tasks, desc)
        attempts = 1
    else:
        results, failed = _run_on_ray(tasks, address, retries, desc)
        attempts = retries + 1
    if failed:
        listed = "; ".join(f"{name} ({why})" for name, why in failed.items())
        raise UserError("--ray" if address else desc, f"{len(failed)} of {len(tasks)} tasks failed after {attempts} "
                                                      f"attempt{'s' * (attempts > 1)}: {listed}; finished ones are "
                                                      "kept, rerun to retry the rest")
    return results


def _run_here(tasks: list[Task], desc: str) -> tuple[dict, dict]:
    results, failed = {}, {}
    for task in progress(tasks, desc=desc, total=len(tasks), unit="task"):
        try:
            results[task.name] = task.fn(*task.args)
        except UserError as exc:
            failed[task.name] = str(exc)
    return results, failed


def _run_on_ray(tasks: list[Task], address: str, retries: int, desc: str) -> tuple[dict, dict]:
    refs: dict = {}
    results, failed = {}, {}
    with connected(address) as ray:
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            attempt = ray.remote(max_calls=1)(_attempt)
            for task in tasks:
                refs[_submit(attempt, task, gpus, retries)] = task.name
            for ref in progress(_as_completed(ray, list(refs)), desc=desc, total=len(refs), unit="task"):
                try:
                    results[refs[ref]] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failed[refs[ref]] = _reason(ray, exc)
        finally:
            for ref, name in refs.items():  # interrupted: stop what still runs on the cluster
                if name not in results and name not in failed:
                    ray.cancel(ref, force=True)
    return results, failed


@contextlib.contextmanager
def connected(address: str):
    """The ``ray`` module connected to the cluster at ``address`` (``local``: a new one on this
    machine) for the block; disconnected (a local one stopped) at its end. Nested blocks share the
    outer one's connection, so several :func:`run_tasks` in a row connect once."""
    ray = require_ray()
    if ray.is_initialized():                 # within an outer ``connected``: keep its connection
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError("--ray", f"cannot connect to Ray at {address!r}: {str(exc).splitlines()[0]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _submit(attempt, task: Task, gpus: float, retries: int):
    if task.device not in ("cpu", "gpu", "any"):
        raise ValueError(f"task device {task.device!r}")
    if task.device == "gpu" and not gpus:
        raise UserError("--ray", f"{task.name} needs a GPU and the cluster has none")
    use_gpu = task.device == "gpu" or (task.device == "any" and gpus > 0)
    return attempt.options(name=task.name, num_cpus=1, num_gpus=1 if use_gpu else 0, max_retries=retries,
                           retry_exceptions=True).remote(task.fn, task.args)


def _attempt(fn: Callable, args: tuple):
    """One attempt of a task, in its worker process."""
    return fn(*args)


def _as_completed(ray, refs: list):
    """``refs`` in the order they finish."""
    while refs:
        done, refs = ray.wait(refs, num_returns=1)
        yield from done


def _reason(ray, exc) -> str:
    """One line saying why a task failed."""
    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        cause = exc.cause
        text = str(cause) if isinstance(cause, UserError) else f"{type(cause).__name__}: {cause}"
    elif isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
        text = "its worker process died"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or ["?"])[0]
