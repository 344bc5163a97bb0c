"""The embedded model: a small Make-Your-Anchor model of the default avatar, shipped inside the package.

``--model embedded`` resolves (``diffusion.loaders.common.resolve_model``) to ``model/`` beside this
module, a Make-Your-Anchor folder in diffusers' ``StableDiffusionControlNetPipeline`` layout that
loads through the same ``from_pretrained`` path as hub ids and folders. Before that, every file is
checked against ``files.json`` (size and sha256): a missing, changed or extra file is a one-line
error. The weights were trained by our own code on our own renders of the default avatar
(``python -m diffusion.embedded``; the README's "Embedded default model" has the commands and times).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from motion.errors import UserError

NAME = "embedded"
FOLDER = Path(__file__).with_name("model")
RECORD = Path(__file__).with_name("files.json")


def file_table(folder: Path) -> dict[str, dict]:
    """Relative path -> {bytes, sha256} of every file under ``folder``, sorted."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        out[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size,
                                                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return out


def verify(folder: Path, record: Path) -> Path:
    """``folder`` if its files are exactly those ``record`` lists (sizes and hashes); else a UserError."""
    if not record.is_file() or not folder.is_dir():
        raise UserError(NAME, f"the embedded model is not installed ({folder}); reinstall avatarcine")
    expected = json.loads(record.read_text())["files"]
    found = file_table(folder)
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            raise UserError(folder / name, "missing from the embedded model; reinstall avatarcine")
        if name not in expected:
            raise UserError(folder / name, "is not part of the embedded model (files.json); remove it")
        if found[name] != expected[name]:
            raise UserError(folder / name, f"does not match files.json (expected {expected[name]['bytes']} bytes, "
                                           f"sha256 {expected[name]['sha256'][:12]}...); reinstall avatarcine")
    return folder


def embedded_dir() -> str:
    """The checked embedded model folder."""
    return str(verify(FOLDER, RECORD))
