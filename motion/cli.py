"""The ``avatarcine`` command. Each package registers its own subcommands in ``<pkg>/commands.py``;
heavy imports happen inside the command functions, so ``--help`` is instant.

A user error is one line on stderr and exit code 2, argument errors included (usage lives in
``--help``); a closed stdout pipe (``avatarcine methods --json | head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import warnings

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
# Libraries' own log lines and progress bars stay off in normal runs (set before they are imported;
# a value the user exported wins).
QUIET_LIBRARIES = {"TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
SIGPIPE_EXIT = 141          # 128 + SIGPIPE, what a shell reports for a tool whose reader went away


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UserErrors (one line, exit 2), not the usage block."""

    def error(self, message: str):
        """``argument --fps: ...`` names the option; other messages name the (sub)command."""
        option, sep, problem = message.partition(": ")
        if message.startswith("argument ") and sep:
            where = option.removeprefix("argument ")
        else:
            where, problem = self.prog.removeprefix("avatarcine ").strip(), message
        raise UserError(where, f"{problem} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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


def one_line_warnings() -> None:
    """Show every warning as one line ``avatarcine: warning: <message>`` on stderr; libraries'
    FutureWarnings stay off unless asked for (``python -W``)."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"avatarcine: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    if not sys.warnoptions:
        warnings.filterwarnings("ignore", category=FutureWarning)


def _terminated(signum, frame):
    raise SystemExit(128 + signum)      # unwinds: temp folders and locks are released on the way out


def main(argv: list[str] | None = None) -> int:
    for key, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(key, value)
    one_line_warnings()
    parser = build_parser()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        args, rest = parser.parse_known_args(argv)
        if rest and not getattr(args, "takes_rest", False):  # generate parses its method's flags itself
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        args.rest = rest
        result = args.func(args)
        sys.stdout.flush()
    except UserError as exc:
        print(f"avatarcine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avatarcine: interrupted; finished outputs are kept", file=sys.stderr)
        return 130
    except BrokenPipeError:             # the reader of stdout went away: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return SIGPIPE_EXIT
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
