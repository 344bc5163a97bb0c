"""A stand-in for the backend Python (`python -m motion.cli ...`) where the real command would need a
GPU-sized model: `methods --json` prints the table in $FAKE_METHODS, `generate PASSES ... -o OUT`
records its arguments in OUT.argv.json, reports progress lines like the real one and writes a short
OUT/video.mp4 (imageio). Anything else is an error, so the add-on cannot lean on it by accident."""

import json
import os
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from motion.progress import progress

args = sys.argv[1:]
if args[:2] != ["-m", "motion.cli"]:
    sys.exit(f"fake backend: expected -m motion.cli, got {args[:2]}")
args = args[2:]
if args == ["methods", "--json"]:
    print(Path(os.environ["FAKE_METHODS"]).read_text())
elif args[:1] == ["generate"]:
    out = Path(args[args.index("-o") + 1])
    Path(f"{out}.argv.json").write_text(json.dumps(args))
    frames = [np.full((32, 48, 3), 40 * k, np.uint8) for k in progress(range(4), desc="denoising", total=4)]
    out.mkdir(parents=True)
    iio.imwrite(out / "video.mp4", np.stack(frames), fps=30, codec="libx264")
else:
    print(f"avatarcine: error: fake backend: unsupported command {args}", file=sys.stderr)
    sys.exit(2)
