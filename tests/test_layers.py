"""Layering read from the source: no module under render/ imports diffusion or torch, at import time
or inside a function (render runs inside a stock Blender, numpy + bpy only)."""

from pathlib import Path

from blender_addon.bundle import imports_of

REPO = Path(__file__).resolve().parents[1]


def top_level_imports(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> top-level names it imports anywhere, for every module of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[module] = {imp.module.split(".")[0] for imp in imports_of(root, module)}
    return out


def test_render_never_imports_diffusion_or_torch():
    found = top_level_imports(REPO, "render")
    assert {"render.api", "render.previews", "render.images"} <= set(found)
    assert {m: names & {"diffusion", "torch"} for m, names in found.items() if names & {"diffusion", "torch"}} == {}


def test_scan_sees_imports_inside_functions(tmp_path):
    """Control: the same scan reports a lazy import of diffusion and of a torch submodule."""
    (tmp_path / "render").mkdir()
    (tmp_path / "render" / "__init__.py").write_text("")
    (tmp_path / "render" / "previews.py").write_text(
        "import numpy\ndef read(p):\n    from diffusion.passes import read_image\n    import torch.nn\n")
    assert top_level_imports(tmp_path, "render")["render.previews"] == {"numpy", "diffusion", "torch"}
