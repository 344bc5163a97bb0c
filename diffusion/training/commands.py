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
