"""``avatarcine generate``, ``avatarcine methods``, ``avatarcine demo`` and ``avatarcine bench generate``."""

from __future__ import annotations

import argparse
import json

from motion.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="passes folder -> video with a diffusion method")
    p.add_argument("passes", metavar="PASSES_DIR", nargs="?", help="passes folder (render output with meta.json)")
    p.add_argument("--method", default="controlnet", help="see `avatarcine methods` (default: controlnet)")
    p.add_argument("--from-record", metavar="RUN_JSON", help="reproduce a run: settings and passes from its run.json")
    p.add_argument("--model", help="SD 1.5-family base: hub id, folder, .safetensors, or `tiny` (random tiny models)")
    p.add_argument("--model-config", help="config repo/folder for a single-file --model")
    p.add_argument("--controlnet", nargs="+", metavar="SPEC",
                   help="ControlNets: a kind (openpose, depth, normal, mesh, stack) or ID/folder, optionally "
                        "=PASS[+PASS..] for the passes stacked on its input (default: openpose)")
    p.add_argument("--controlnet-scale", type=float, nargs="+", metavar="S", help="one scale per ControlNet")
    p.add_argument("--guidance-start", type=float, nargs="+", metavar="F", help="per ControlNet, fraction of steps")
    p.add_argument("--guidance-end", type=float, nargs="+", metavar="F", help="per ControlNet, fraction of steps")
    p.add_argument("--prompt")
    p.add_argument("--negative-prompt")
    p.add_argument("--scheduler", choices=("ddim", "dpm", "euler"))
    p.add_argument("--steps", type=int)
    p.add_argument("--cfg", type=float, help="classifier-free guidance scale")
    p.add_argument("--eta", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--max-frames", type=int)
    p.add_argument("--attention", choices=("none", "cross-frame", "window"),
                   help="self-attention across frames (default: window = all frames of a window)")
    p.add_argument("--window", type=int, help="frames per window; 0 = one window over the whole clip (default 16)")
    p.add_argument("--overlap", type=int, help="frames shared by consecutive windows (default 4)")
    p.add_argument("--weighting", choices=("uniform", "triangular"))
    p.add_argument("--shared-noise", type=float, help="0 independent .. 1 same initial noise for all frames")
    p.add_argument("--background", help="keep the background fixed: an image, or `first` (the first frame)")
    p.add_argument("--mask-pass", help="pass with the actor mask (default: mask)")
    p.add_argument("--device", help="cuda | mps | cpu")
    p.add_argument("--dtype", choices=("fp32", "fp16", "bf16"))
    p.add_argument("-o", "--output", help="output folder")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("methods", help="list the diffusion methods and their settings")
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
    p.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--size", type=int, default=64, help="square image size")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--model", default="tiny")
    p.add_argument("--device")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", metavar="PATH", help="also write the figures here")
    p.set_defaults(func=cmd_bench)


def _controlnet_specs(args, base: list) -> list:
    """--controlnet names (or the base specs) with --controlnet-scale/--guidance-start/--guidance-end
    applied: one value for all, or one per ControlNet."""
    import dataclasses

    from diffusion.methods.controlnet import ControlSpec

    specs = [ControlSpec.parse(name) for name in args.controlnet] if args.controlnet else list(base)
    per_net = {}
    for field, option in (("scale", "--controlnet-scale"), ("start", "--guidance-start"), ("end", "--guidance-end")):
        given = getattr(args, option[2:].replace("-", "_"))
        if given is not None:
            if len(given) not in (1, len(specs)):
                raise UserError(option, f"give 1 or {len(specs)} values (one per ControlNet), got {len(given)}")
            per_net[field] = given * len(specs) if len(given) == 1 else given
    return [dataclasses.replace(spec, **{k: v[i] for k, v in per_net.items()}) for i, spec in enumerate(specs)]


def settings_from_args(method, args, base=None):
    """The method's settings: its defaults (or ``base``), overridden by every option the user gave."""
    import dataclasses

    settings = base or method.settings()
    changes = {}
    for f in dataclasses.fields(settings):
        value = getattr(args, f.name, None)
        if value is not None and f.name != "controlnets":
            changes[f.name] = value
    if getattr(args, "window", None) == 0:
        changes["window"] = None
    if hasattr(settings, "controlnets"):
        changes["controlnets"] = _controlnet_specs(args, settings.controlnets)
    return dataclasses.replace(settings, **changes)


def cmd_generate(args) -> None:
    from pathlib import Path

    from diffusion.output import VIDEO, write_generation
    from diffusion.passes import PassesFolder
    from diffusion.registry import get_method

    base, passes_dir = None, args.passes
    method = get_method(args.method)
    if args.from_record:
        record = _read_record(args.from_record)
        method = get_method(record.get("method", args.method))
        base = method.settings.from_dict(record["settings"])
        passes_dir = passes_dir or record["passes"]["folder"]
    if not passes_dir:
        raise UserError("generate", "give PASSES_DIR (or --from-record RUN_JSON)")
    if not args.output:
        raise UserError("generate", "give -o OUTPUT_FOLDER")
    if Path(args.output).exists() and not args.force:
        raise UserError(args.output, "already exists; pass --force to overwrite")
    settings = settings_from_args(method, args, base)
    if not settings.prompt:
        raise UserError("--prompt", "a text prompt is required")
    passes = PassesFolder.open(passes_dir)
    components = method.load(settings)
    gen = method.run(passes, settings, components)
    out = write_generation(gen, args.output, force=args.force)
    print(f"{len(gen.frames)} frames -> {out / VIDEO}")


def _read_record(path: str) -> dict:
    try:
        record = json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise UserError(path, f"unreadable run record ({exc})") from None
    if "settings" not in record or "passes" not in record:
        raise UserError(path, "not a run record (no settings/passes)")
    return record


def cmd_methods(args) -> None:
    from diffusion.registry import methods

    table = {name: {"summary": m.summary, "settings": m.describe()} for name, m in methods().items()}
    if args.json:
        print(json.dumps(table, indent=1, default=str))
        return
    for name, info in table.items():
        print(f"{name}: {info['summary']}")
        for s in info["settings"]:
            print(f"  {s['name']:<16} {str(s['default']):<28} {s['help']}")


def cmd_demo(args) -> None:
    from diffusion.demo import run_demo

    run_demo(args.output, force=args.force, verbose=args.verbose)


def cmd_bench(args) -> None:
    from diffusion.bench import run_bench

    figures = run_bench(args.frames, size=args.size, steps=args.steps, model=args.model, device=args.device,
                        threads=args.threads)
    print(json.dumps(figures, indent=1))
    if args.json:
        from motion.fileio import save_json
        save_json(args.json, figures)
