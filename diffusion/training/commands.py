"""``avatarcine train controlnet CONFIG``: train a ControlNet on rendered passes folders."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train models on rendered passes folders")
    train_sub = p.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    t = train_sub.add_parser("controlnet", help="train a ControlNet: condition passes -> rgb (diffusers recipe)",
                             description="Train a ControlNet on (condition passes, rgb) pairs; see the README "
                                         "for the YAML config. Multi-GPU: `accelerate launch -m motion.cli train ...`.")
    t.add_argument("config", metavar="CONFIG", help="YAML config (data, passes, model, output, steps, ...)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output folder")
    t.add_argument("--max-steps", type=int, metavar="N",
                   help="stop at step N with a checkpoint (the lr schedule still spans the config's steps)")
    t.add_argument("--force", action="store_true", help="delete an existing training output and start over")
    t.set_defaults(func=cmd_train_controlnet)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("train-controlnet", help="ControlNet training steps/s on a synthetic passes folder")
    p.add_argument("--model", default="tiny", help="base model (default: the tiny random models)")
    p.add_argument("--size", type=int, default=64, help="square training size")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--passes", nargs="+", default=["skeleton"], help="condition passes (synthetic: skeleton, "
                                                                      "depth_png, normal, mask)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=cmd_bench_train)


def cmd_bench_train(args) -> int:
    """Time optimizer steps (data, VAE encode, ControlNet + UNet forward/backward, AdamW) without checkpoints.
    The synthetic folder has no rgb pass: its normal map (a colour image) stands in as the target."""
    import tempfile
    import time
    from pathlib import Path

    import torch

    from diffusion.synthetic_passes import write_passes
    from diffusion.training.config import TrainControlNetConfig
    from diffusion.training.controlnet_trainer import ControlNetTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_passes(Path(tmp) / "passes", frames=max(8, 2 * args.batch), size=(args.size, args.size))
        warm = 2
        config = TrainControlNetConfig(data=[str(folder)], passes=args.passes, target="normal", resolution=args.size,
                                       model=args.model, output=str(Path(tmp) / "out"), steps=warm + args.steps,
                                       batch_size=args.batch, mixed_precision=args.mixed_precision)
        trainer = ControlNetTrainer(config)
        for _ in trainer.train_steps(warm):
            pass
        start = time.perf_counter()
        for _ in trainer.train_steps(warm + args.steps):
            pass
        seconds = time.perf_counter() - start
    print(f"train controlnet: {args.steps / seconds:.2f} steps/s ({seconds / args.steps * 1000:.0f} ms/step), "
          f"model {args.model}, {args.size}x{args.size}, batch {args.batch}, passes {'+'.join(args.passes)}, "
          f"device {trainer.accelerator.device}, mixed precision {args.mixed_precision}, "
          f"torch threads {torch.get_num_threads()}")
    return 0


def cmd_train_controlnet(args) -> int:
    from diffusion.training.config import load_config
    from diffusion.training.controlnet_trainer import train_controlnet
    from motion.errors import UserError

    if args.resume and args.force:
        raise UserError("--resume/--force", "choose one: continue the run or start over")
    config = load_config(args.config)
    trainer = train_controlnet(config, resume=args.resume, force=args.force, max_steps=args.max_steps)
    if trainer.accelerator.is_main_process:
        state, out = trainer.state, trainer.output
        if state.step == config.steps:
            final = out / "controlnet"
            print(f"trained {state.step} steps -> {final}\n"
                  f"use it: avatarcine generate PASSES --model {config.model} "
                  f"--controlnet {final}={'+'.join(config.passes)}")
        else:
            print(f"stopped at step {state.step}/{config.steps}; checkpoint in {out}; continue with --resume")
    return 0
