"""``avatarcine motion ...`` and ``avatarcine avatar ...``."""

from __future__ import annotations

import argparse

from motion.errors import UserError, check_number, number_arg

BODIES = ("anny", "smpl", "smplh", "smplx")
FPS = number_arg(above=0)          # upper limits where frames are made (motion.motion.MAX_FPS)


def register(sub: argparse._SubParsersAction) -> None:
    motion = sub.add_parser("motion", help="read, convert, retarget and generate motion clips")
    msub = motion.add_subparsers(dest="motion_command", metavar="ACTION", required=True)

    p = msub.add_parser("info", help="frames, fps, duration, skeleton and joint count of a motion file")
    p.add_argument("file")
    _reader_args(p)
    p.set_defaults(func=cmd_info)

    p = msub.add_parser("convert", help="convert between formats, resample, trim, retarget")
    p.add_argument("input", help="AMASS/SMPL-X npz or pkl, BVH, HumanML3D joints .npy, avatarcine .npz")
    p.add_argument("output", help="avatarcine .npz or .bvh")
    p.add_argument("--fps", type=FPS, help="resample to this frame rate (slerp rotations)")
    p.add_argument("--start", type=number_arg(minimum=0), help="first second to keep")
    p.add_argument("--end", type=number_arg(above=0), help="last second to keep (exclusive)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--to", choices=BODIES, help="retarget onto this body's skeleton")
    target.add_argument("--avatar", metavar="AVATAR_NPZ",
                        help="retarget onto this baked avatar (kept as is when already on its skeleton)")
    _model_args(p)
    _reader_args(p)
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT")
    p.set_defaults(func=cmd_convert)

    p = msub.add_parser("generate", help="motion from a text like 'walk forward, turn left, then wave'")
    p.add_argument("text")
    p.add_argument("--seconds", type=number_arg(above=0),
                   help="total length (default: the primitives' natural length)")
    p.add_argument("--fps", type=FPS, default=30.0)
    p.add_argument("--seed", type=number_arg(minimum=0, integer=True), default=0)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_generate)

    avatar = sub.add_parser("avatar", help="bake body models into avatar assets for rendering")
    asub = avatar.add_subparsers(dest="avatar_command", metavar="ACTION", required=True)
    p = asub.add_parser("bake", help="write the avatar asset render/ consumes (no torch needed there)")
    p.add_argument("--body", choices=BODIES, default="anny")
    _model_args(p)
    p.add_argument("--shape", nargs="*", default=[], metavar="NAME=VALUE",
                   help="anny: gender age muscle weight height proportions (0..1); smpl*: beta0=.. beta9=..")
    p.add_argument("--rebuild-default", action="store_true",
                   help="bake the shipped default avatar (clothed Anny, default shape) from scratch")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_bake)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-path", help="SMPL/SMPL-H/SMPL-X model folder or file (or $AVATARCINE_SMPL_DIR)")
    p.add_argument("--gender", choices=("neutral", "male", "female"), help="SMPL-family model gender")


def _reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frame", choices=("y_up", "z_up", "opencv"), default="y_up",
                   help="world frame of SMPL-X fitter files (opencv: camera-space fits)")
    p.add_argument("--sample", type=number_arg(minimum=0, integer=True), default=0,
                   help="which sample of an MDM results.npy")
    p.add_argument("--units", choices=("m", "cm", "mm", "inch"), help="BVH units (default: guessed)")
    p.add_argument("--source-fps", type=FPS, help="frame rate of files that do not state one")


def _read(args):
    from motion.io import read_motion

    return read_motion(args.file if hasattr(args, "file") else args.input,
                       model_path=getattr(args, "model_path", None), fps=args.source_fps,
                       frame=args.frame, sample=args.sample, units=args.units)


def parse_shape(items: list[str]) -> dict[str, float]:
    shape = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            number = float(value)
        except ValueError:
            raise UserError("--shape", f"expected NAME=NUMBER, got {item!r}") from None
        shape[name] = check_number(number, f"--shape {name}")
    return shape


def cmd_info(args) -> None:
    m = _read(args)
    print(f"file      {args.file}\nskeleton  {m.skeleton}\njoints    {m.n_joints}\n"
          f"frames    {m.n_frames}\nfps       {m.fps:g}\nduration  {m.duration:.3f} s")


def cmd_convert(args) -> None:
    from motion.fileio import check_writable
    from motion.io import WRITE_SUFFIXES, write_motion
    from motion.ops import resample, trim
    from motion.progress import progress

    check_writable(args.output, args.force, suffixes=WRITE_SUFFIXES)
    steps = [lambda m: _read(args)]
    if args.start is not None or args.end is not None:
        steps.append(lambda m: trim(m, args.start, args.end))
    if args.fps is not None:
        steps.append(lambda m: resample(m, args.fps))
    if args.to or args.avatar:
        steps.append(lambda m: _retarget(m, args))
    m = None
    for step in progress(steps, desc="convert", unit="step"):
        m = step(m)
    write_motion(m, args.output, force=args.force)
    print(f"wrote {args.output}: {m.skeleton}, {m.n_frames} frames at {m.fps:g} fps")


def _retarget(m, args):
    """``m`` on the ``--to`` body or the ``--avatar`` file (as is when already on its skeleton)."""
    from motion.retarget import retarget

    if args.to:
        from motion.bodies import bake_avatar

        return retarget(m, bake_avatar(args.to, model_path=args.model_path, gender=args.gender))
    from motion.asset import AvatarAsset

    avatar = AvatarAsset.load(args.avatar)
    return m if list(m.joint_names) == list(avatar.joint_names) else retarget(m, avatar)


def cmd_generate(args) -> None:
    from motion.fileio import check_writable
    from motion.generate import generate_motion

    check_writable(args.output, args.force, suffixes=(".npz",))
    m = generate_motion(args.text, seconds=args.seconds, fps=args.fps, seed=args.seed)
    m.save(args.output, force=args.force)
    print(f"wrote {args.output}: {m.n_frames} frames at {m.fps:g} fps ({m.duration:.2f} s)")


def cmd_bake(args) -> None:
    from motion.bodies import bake_avatar
    from motion.fileio import check_writable

    check_writable(args.output, args.force, suffixes=(".npz",))
    if args.rebuild_default:
        from motion.bodies.default_avatar import build_default_avatar

        if args.body != "anny" or args.shape or args.gender or args.model_path:
            raise UserError("--rebuild-default", "the default avatar is Anny of default shape: no --body/--shape/--gender")
        asset = build_default_avatar()
    else:
        asset = bake_avatar(args.body, model_path=args.model_path, gender=args.gender, shape=parse_shape(args.shape))
    asset.save(args.output, force=args.force)
    print(f"wrote {args.output}: {args.body}, {len(asset.rest_vertices)} vertices, {len(asset.joint_names)} joints")


def register_bench(bench_sub) -> None:
    p = bench_sub.add_parser("motion", help="throughput: read, retarget (SMPL-H -> Anny), resample, skin on the AMASS sample")
    p.add_argument("--sample", help="AMASS .npz (default: shared/data/amass_smplh_sample.npz or $AVATARCINE_AMASS_SAMPLE)")
    p.set_defaults(func=cmd_bench_motion)


def cmd_bench_motion(args) -> None:
    from motion.benchmarks import print_bench_motion

    print_bench_motion(args)
