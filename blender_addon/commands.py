"""``avatarcine addon build|install``: package the Blender extension (with the modules of ``motion``
and ``render`` it imports, ``blender_addon.bundle``) and install it into a Blender 4.2+."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from motion.errors import UserError

PACKAGES_ROOT = Path(__file__).resolve().parents[1]     # the checkout, or site-packages of an install


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("addon", help="build or install the Blender extension")
    asub = p.add_subparsers(dest="addon_command", metavar="ACTION", required=True)
    b = asub.add_parser("build", help="zip the extension for Blender's 'Install from Disk'")
    b.add_argument("-o", "--output", default="avatarcine_blender_extension.zip")
    b.add_argument("--force", action="store_true")
    b.set_defaults(func=cmd_build)
    i = asub.add_parser("install", help="build and install into a Blender (blender --command extension install-file)")
    i.add_argument("--blender", help="Blender executable (default: blender on PATH)")
    i.set_defaults(func=cmd_install)


def build(output: str | os.PathLike, force: bool = False) -> Path:
    from blender_addon.bundle import Bundle
    from motion.fileio import atomic_path

    files = Bundle(PACKAGES_ROOT).files()
    with atomic_path(output, force) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for path, arc in files:
                zf.write(path, arc)
    return Path(output)


def cmd_build(args) -> int:
    print(build(args.output, args.force))
    return 0


def cmd_install(args) -> int:
    blender = shutil.which(args.blender or "blender")
    if not blender:
        raise UserError("--blender", f"no Blender executable {'at ' + args.blender if args.blender else 'on PATH'}; "
                                     "pass --blender /path/to/blender")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = build(Path(tmp) / "avatarcine.zip")
        run = subprocess.run([blender, "--command", "extension", "install-file", "-r", "user_default", "-e",
                              str(zip_path)], capture_output=True, text=True)
    if run.returncode:
        raise UserError(blender, f"extension install failed: {(run.stderr or run.stdout).strip().splitlines()[-1:]}")
    print("installed avatarcine into", blender)
    return 0
