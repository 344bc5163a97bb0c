"""``avatarcine generate``, ``train``, ``methods``, ``demo`` and ``bench generate``: all read the registry.

The flags of ``generate`` are built from the chosen method's settings fields (``--method M``, or the
method of ``--from-record``): ``avatarcine generate --method M --help`` lists them. They are built
once ``generate`` runs, so ``avatarcine --help`` imports no method (and no torch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from motion.cluster import add_arguments
from motion.errors import UserError

DEFAULT_METHOD = "controlnet"
GENERATE_HELP = "passes folder -> video with a diffusion method (see `avatarcine methods`)"


def _peek(args: list[str], option: str) -> str | None:
    """The value given to ``option`` in raw arguments (``--opt V`` or ``--opt=V``), else None."""
    for k, arg in enumerate(args):
        if arg == option and k + 1 < len(args):
            return args[k + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def add_settings_arguments(parser: argparse.ArgumentParser, settings_class) -> None:
    """One flag per settings field (``diffusion.sampling.settings``): default None = not given."""
    group_parsers: dict[str, argparse._ArgumentGroup] = {}
    for info in settings_class.describe():
        group = group_parsers.setdefault(info["group"] or "settings",
                                         parser.add_argument_group(f"{info['group'] or 'method'} settings"))
        base = info["type"].split(" | ")[0]
        element = base[5:-1] if base.startswith("list[") else base
        kwargs = {"default": None, "help": info["help"] + (f" (default: {info['default']})"
                                                              if info["default"] not in (None, "") else "")}
        if element == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}[element]
            if base.startswith("list["):
                kwargs["nargs"] = "+"
            kwargs["metavar"] = "|".join(info["choices"]) if info.get("choices") else {"str": "TEXT", "int": "N", "float": "X"}[element]
        group.add_argument(info["flag"], dest=f"setting_{info['name']}", **kwargs)


def given_settings(args: argparse.Namespace, settings_class) -> dict:
    """The settings the user gave on the command line (0 -> None where a field says so)."""
    out = {}
    for info in settings_class.describe():
        value = getattr(args, f"setting_{info['name']}", None)
        if value is None:
            continue
        if info.get("zero_is_none") and value == 0:
            value = None
        out[info["name"]] = value
    return out


def generate_parser(method) -> argparse.ArgumentParser:
    """``avatarcine generate``'s parser for ``method``: the common arguments + one flag per setting."""
    from motion.cli import OneLineParser

    p = OneLineParser(prog="avatarcine generate", description=GENERATE_HELP)
    p.add_argument("passes", metavar="PASSES_DIR", nargs="*",
                   help="passes folder (render output with meta.json); several: each into OUT/<folder name>/, "
                        "finished ones skipped on rerun")
    p.add_argument("--list", metavar="FILE", help="also the passes folders listed in FILE (one per line, relative "
                                                  "to FILE; # comments), as for several")
    p.add_argument("--method", help=f"diffusion method (default: {DEFAULT_METHOD}); this list shows "
                                    f"{method.name}'s settings (`--method M --help` for another's)")
    p.add_argument("--from-record", metavar="RUN_JSON", help="reproduce a run: settings and passes from its run.json")
    p.add_argument("-o", "--output", help="output folder")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    add_arguments(p)
    add_settings_arguments(p, method.Settings)
    return p


def register(sub: argparse._SubParsersAction) -> None:
    # The method's flags exist only once the method is known: ``cmd_generate`` parses the arguments
    # with :func:`generate_parser` (so `avatarcine --help` imports no method and no torch).
    p = sub.add_parser("generate", help=GENERATE_HELP, add_help=False)
    p.set_defaults(func=cmd_generate, takes_rest=True)

    p = sub.add_parser("train", help="train a method's models on rendered passes folders",
                       description="Train with a recipe of the registry (`avatarcine methods` lists them) from a "
                                   "YAML config; see the README. Multi-GPU: `accelerate launch -m motion.cli train ...`.")
    p.add_argument("recipe", metavar="RECIPE", help="training recipe, e.g. controlnet")
    p.add_argument("config", metavar="CONFIG", help="YAML config (data, model, output, steps, ...)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output folder")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="stop at step N with a checkpoint (the lr schedule still spans the config's steps)")
    p.add_argument("--force", action="store_true", help="delete an existing training output and start over")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("methods", help="list the diffusion methods, their settings and training recipes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("demo", help="motion -> avatar passes (orbit camera) -> video, all defaults")
    p.add_argument("-o", "--output", default="avatarcine-demo", help="output folder (default: ./avatarcine-demo)")
    p.add_argument("--force", action="store_true")
    p.add_argument("--verbose", action="store_true",
                   help="show Blender's own output (default: OUT/passes/logs/blender.log)")
    p.set_defaults(func=cmd_demo)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("generate", help="seconds/frame and peak memory vs frame count; temporal overhead")
    p.add_argument("--method", default=DEFAULT_METHOD, help=f"method to time (default: {DEFAULT_METHOD})")
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--size", type=int, default=64, help="square image size")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--model", default="tiny")
    p.add_argument("--device")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", metavar="PATH", help="also write the figures here")
    p.set_defaults(func=cmd_bench)

    p = bench_sub.add_parser("train-controlnet", help="ControlNet training steps/s on a synthetic passes folder")
    p.add_argument("--model", default="tiny", help="base model (default: the tiny random models)")
    p.add_argument("--size", type=int, default=64, help="square training size")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--passes", nargs="+", default=["skeleton"],
                   help="condition passes (synthetic: skeleton, depth_png, normal, mask)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=cmd_bench_train)


def cmd_generate(raw) -> None:
    import dataclasses

    from diffusion.io.passes import PassesFolder
    from diffusion.registry import get_method
    from motion.fileio import check_writable

    name, record_path = _peek(raw.rest, "--method"), _peek(raw.rest, "--from-record")
    record = _read_record(record_path) if record_path else None
    method = get_method(name or (record or {}).get("method") or DEFAULT_METHOD)
    args = generate_parser(method).parse_args(raw.rest)
    folders = list(args.passes) + (_listed_folders(args.list) if args.list else [])
    if not folders and record:
        folders = [record["passes"]["folder"]]
    if not folders:
        raise UserError("generate", "give PASSES_DIR (or --list FILE, or --from-record RUN_JSON)")
    if not args.output:
        raise UserError("generate", "give -o OUTPUT_FOLDER")
    batch = len(folders) > 1 or bool(args.list)
    outputs = _generation_outputs(folders, args.output, batch)
    for out in outputs.values():               # a batch skips or refuses finished outputs one by one
        check_writable(out, args.force or batch, folder=True)
    base = method.Settings.from_dict(record["settings"]) if record else method.Settings()
    settings = dataclasses.replace(base, **given_settings(args, method.Settings))
    for folder in folders:                       # cheap checks of every input before any model loads
        method.check_inputs(settings, PassesFolder.open(folder))
    jobs = [(str(Path(f).resolve()), str(outputs[f].resolve()), method.name, settings.to_dict(), args.force, batch)
            for f in folders]
    if not batch and not args.ray:               # one folder here: its errors as they are
        print(generate_one(*jobs[0]))
        return
    from motion.cluster import Task, run_tasks

    device = {"cpu": "cpu", "cuda": "gpu"}.get(getattr(settings, "device", None) or "", "any")
    models: dict = {}                            # in this process: loaded once for every folder
    results = run_tasks([Task(f, generate_one, job if args.ray else job + (models,), device)
                         for f, job in zip(folders, jobs)], args.ray, args.retries, desc="generate")
    print("\n".join(results[f] for f in folders))


def _listed_folders(path: str) -> list[str]:
    """The passes folders a list file names (one per line, relative to the file; blank and # lines skipped)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UserError(path, f"cannot read the list ({exc.strerror})") from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise UserError(path, "lists no passes folder")
    return [str(Path(path).resolve().parent / entry) for entry in entries]


def _generation_outputs(folders: list[str], output: str, batch: bool) -> dict[str, Path]:
    """The output of each passes folder: ``output`` for one, ``output/<folder name>`` in a batch."""
    if not batch:
        return {folders[0]: Path(output)}
    outputs: dict[str, Path] = {}
    for folder in folders:
        out = Path(output) / Path(folder).resolve().name
        if folder in outputs or out in outputs.values():
            raise UserError(folder, f"another passes folder of this run has the name {out.name!r} (both would go "
                                    f"to {out})")
        outputs[folder] = out
    return outputs


def generate_one(passes_dir: str, out: str, method_name: str, settings: dict, force: bool, batch: bool,
                 models: dict | None = None) -> str:
    """Generate the passes folder ``passes_dir`` into ``out`` holding the output's lock (locally, or
    as a Ray task: ``motion.cluster``); in a batch, an ``out`` already generated with these settings
    is skipped. ``models`` keeps the loaded models for the next call."""
    from diffusion.io.output import VIDEO, write_generation
    from diffusion.io.passes import PassesFolder
    from diffusion.registry import get_method
    from motion.fileio import output_lock

    method = get_method(method_name)
    s = method.Settings.from_dict(settings)
    models = {} if models is None else models
    with output_lock(out):
        if batch and Path(out).exists() and not force:
            if _same_generation(Path(out), passes_dir, method_name, settings):
                return f"{out}: done before, skipped"
            raise UserError(out, "holds a generation of other settings or passes; pass --force to replace it")
        if "components" not in models:
            models["components"] = method.load(s)
        gen = method.run(PassesFolder.open(passes_dir), s, models["components"])
        write_generation(gen, out, force=force)
    return f"{len(gen.frames)} frames -> {Path(out) / VIDEO}"


def _same_generation(out: Path, passes_dir: str, method_name: str, settings: dict) -> bool:
    from diffusion.io.output import RECORD

    try:
        record = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return False
    return (record.get("method") == method_name and record.get("passes", {}).get("folder") == passes_dir
            and record.get("settings") == json.loads(json.dumps(settings, default=str)))


def _read_record(path: str) -> dict:
    try:
        record = json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise UserError(path, f"unreadable run record ({exc})") from None
    if not isinstance(record, dict) or "settings" not in record or "passes" not in record:
        raise UserError(path, "not a run record (no settings/passes)")
    return record


def cmd_train(args) -> int:
    from diffusion.registry import get_recipe
    from diffusion.training.trainer import train

    if args.resume and args.force:
        raise UserError("--resume/--force", "choose one: continue the run or start over")
    recipe = get_recipe(args.recipe)
    config = recipe.load_config(args.config)
    trainer = train(recipe, config, resume=args.resume, force=args.force, max_steps=args.max_steps)
    if trainer.accelerator.is_main_process:
        state = trainer.state
        if state.step == config.steps:
            print(f"trained {state.step} steps -> {trainer.final}\nuse it: {recipe.usage(config, trainer.final)}")
        else:
            print(f"stopped at step {state.step}/{config.steps}; checkpoint in {trainer.output}; continue with --resume")
    return 0


def cmd_methods(args) -> None:
    from diffusion.registry import entries, methods

    table = {name: {"summary": m.summary, "settings": m.Settings.describe(),
                    "recipes": sorted(entries()[name].recipes)} for name, m in methods().items()}
    if args.json:
        print(json.dumps(table, indent=1, default=str))
        return
    for name, info in table.items():
        recipes = f" (train: {', '.join(info['recipes'])})" if info["recipes"] else ""
        print(f"{name}: {info['summary']}{recipes}")
        for s in info["settings"]:
            print(f"  {s['flag']:<20} {str(s['default']):<24} {s['help']}")


def cmd_demo(args) -> None:
    from diffusion.demo import run_demo

    run_demo(args.output, force=args.force, verbose=args.verbose)


def cmd_bench(args) -> None:
    from diffusion.bench import run_bench

    figures = run_bench(args.frames, size=args.size, steps=args.steps, model=args.model, device=args.device,
                        threads=args.threads, method=args.method)
    print(json.dumps(figures, indent=1))
    if args.json:
        from motion.fileio import save_json
        save_json(args.json, figures)


def cmd_bench_train(args) -> None:
    from diffusion.bench import run_train_bench

    print(run_train_bench(args.model, args.size, args.batch, args.steps, tuple(args.passes), args.mixed_precision,
                          args.threads))
