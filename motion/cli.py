"""The ``avatarcine`` command. Each package registers its own subcommands in ``<pkg>/commands.py``;
heavy imports happen inside the command functions, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys

from motion.errors import UserError

# Order = order in --help. A package whose commands module is absent is simply skipped.
COMMAND_MODULES = (
    "motion.commands",
    "render.commands",
    "diffusion.commands",
    "diffusion.evaluation.commands",
    "diffusion.benchmark.commands",
    "blender_addon.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avatarcine",
        description="3D human avatars -> condition passes -> photoreal video.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = []
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "\0"):
                raise
            continue
        module.register(sub)
        modules.append(module)
    # ``avatarcine bench ...``: every package may add benchmarks with ``register_bench(bench_sub)``.
    bench = sub.add_parser("bench", help="benchmarks and the synthetic ground-truth benchmark")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for module in modules:
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:  # commands whose flags depend on their arguments (generate) parse the rest themselves
        if not getattr(args, "takes_rest", False):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        result = args.func(args)
    except UserError as exc:
        print(f"avatarcine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avatarcine: interrupted; finished outputs are kept", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
