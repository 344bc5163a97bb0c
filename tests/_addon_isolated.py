"""Runs under `python -I -S` (no user site, no PYTHONPATH, no .pth files, so no editable install of
avatarcine): puts the venv's site-packages on the path with every distribution but bpy and numpy
blocked (a stock Blender has those only), installs the extension zip with Blender's own extension
installer into the user folder $BLENDER_USER_RESOURCES (offline), enables it, runs one scenario of
tests/_addon_scenarios.py and prints, as the last line, JSON: the scenario's result, where every
module of ours was imported from, and any blocked distribution something tried to import.

    python -I -S _addon_isolated.py SITE_PACKAGES EXTENSION_ZIP SCENARIO ARGS_JSON
"""

import json
import runpy
import sys
from importlib import metadata
from pathlib import Path

site, zip_path, scenario, args = sys.argv[1:5]
sys.path.append(site)
ALLOWED = {"bpy", "numpy", "avatarcine"}
BLOCKED = {top for top, dists in metadata.packages_distributions().items()
           if not {d.lower() for d in dists} <= ALLOWED}
tried = set()


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            tried.add(name.split(".")[0])
            raise ImportError("not in a stock Blender: " + name)


sys.meta_path.insert(0, Block())

import bpy  # noqa: E402

PACKAGE = "bl_ext.user_default.avatarcine"
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
assert PACKAGE in bpy.context.preferences.addons, "the extension did not enable"
scenarios = runpy.run_path(str(Path(__file__).with_name("_addon_scenarios.py")))
result = scenarios[scenario](bpy, PACKAGE, json.loads(args))
ours = ("motion", "render", "diffusion", "blender_addon", "avatarcine", "bl_ext")
origins = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()
           if name.split(".")[0] in ours}
print(json.dumps({"result": result, "origins": origins, "extension": str(Path(sys.modules[PACKAGE].__file__).parent),
                  "blocked_tried": sorted(tried)}))
