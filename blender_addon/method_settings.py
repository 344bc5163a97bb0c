"""Controls for the diffusion methods, built from the registry's settings metadata: the backend Python
prints it (``avatarcine methods --json``: name, flag, type, default, help, group, choices, bounds),
and every method gets a PropertyGroup made from it at run time, on the scene as
``avatarcine_method_<name>``. A new method therefore appears without add-on code. The JSON is kept
in the add-on's user folder, so the controls are back at the next start without running the backend.

Types: ``bool`` -> checkbox, ``int``/``float`` -> number with the bounds, ``str`` with choices ->
menu, ``str`` -> text, ``list[...]`` -> text of space-separated values; ``X | None`` with default
None (or one where 0 means None) gets a tick box "given". Only values that differ from the method's
defaults are passed on the command line, so its defaults stay its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from motion.errors import UserError

from .preferences import PACKAGE

CACHE = "methods.json"
NONE_CHOICE = "<none>"
INT_LIMIT = 2**31 - 1                   # Blender's IntProperty is 32-bit
METHODS: dict[str, dict] = {}           # name -> {"summary", "settings", ...} as the backend printed it
_CLASSES: dict[str, type] = {}


def _kind(info: dict) -> tuple[str, bool, bool]:
    """(element type, is a list, may be None) of a setting's type string."""
    text = info["type"]
    optional = text.endswith(" | None")
    base = text.removesuffix(" | None")
    is_list = base.startswith("list[")
    return (base[5:-1] if is_list else base), is_list, optional


def has_toggle(info: dict) -> bool:
    """Whether the setting gets a "given" tick box (None is a value the user may choose)."""
    element, is_list, optional = _kind(info)
    return optional and element in ("int", "float") and not is_list and (
        info["default"] is None or info.get("zero_is_none", False))


def toggle_name(info: dict) -> str:
    return f"given__{info['name']}"


def _bounds(info: dict, element: str) -> dict:
    """min/max of a number setting: ``low``/``high`` (inclusive), else just past ``above``; ints in 32 bits."""
    low, high = info.get("low"), info.get("high")
    if low is None and info.get("above") is not None:
        low = info["above"] + 1 if element == "int" else info["above"]
    out = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    if element == "int":
        out = {k: max(min(int(v), INT_LIMIT), -INT_LIMIT) for k, v in out.items()}
    return {k: float(v) for k, v in out.items()} if element == "float" else out


def _property(info: dict):
    """The bpy property of one setting."""
    element, is_list, optional = _kind(info)
    default = info["default"]
    common = {"name": info["name"].replace("_", " ").capitalize(), "description": info.get("help", "")}
    if is_list:
        return StringProperty(default=" ".join(str(v) for v in (default or [])), **common)
    if element == "bool":
        return BoolProperty(default=bool(default), **common)
    if info.get("choices"):
        items = ([(NONE_CHOICE, "default", "the method's own choice")] if optional else []) + [
            (str(c), str(c), "") for c in info["choices"]]
        return EnumProperty(items=items, default=NONE_CHOICE if default is None else str(default), **common)
    if element == "int":
        bounds = _bounds(info, "int")
        value = default if default is not None else bounds.get("min", 0)
        return IntProperty(default=max(min(int(value), bounds.get("max", INT_LIMIT)), bounds.get("min", -INT_LIMIT)),
                           **bounds, **common)
    if element == "float":
        bounds = _bounds(info, "float")
        return FloatProperty(default=float(default if default is not None else bounds.get("min", 0.0)), **bounds,
                             **common)
    return StringProperty(default="" if default is None else str(default), **common)


def _identifier(name: str) -> str:
    return re.sub(r"\W", "_", name)


def scene_attribute(method: str) -> str:
    return f"avatarcine_method_{_identifier(method)}"


def build(table: dict) -> None:
    """(Re)register one PropertyGroup per method of ``table`` (the JSON of ``avatarcine methods``)."""
    clear()
    for name, info in sorted(table.items()):
        annotations = {}
        for setting in info["settings"]:
            annotations[setting["name"]] = _property(setting)
            if has_toggle(setting):
                annotations[toggle_name(setting)] = BoolProperty(
                    name="given", default=setting["default"] is not None,
                    description=f"give {setting['flag']} (unticked: none)")
        cls = type(f"AVATARCINE_PG_method_{_identifier(name)}", (bpy.types.PropertyGroup,),
                   {"__annotations__": annotations})
        bpy.utils.register_class(cls)
        setattr(bpy.types.Scene, scene_attribute(name), PointerProperty(type=cls))
        _CLASSES[name] = cls
        METHODS[name] = info


def clear() -> None:
    for name, cls in _CLASSES.items():
        delattr(bpy.types.Scene, scene_attribute(name))
        bpy.utils.unregister_class(cls)
    _CLASSES.clear()
    METHODS.clear()


def _cache_dir() -> Path:
    try:
        return Path(bpy.utils.extension_path_user(PACKAGE, create=True))
    except ValueError:                    # registered from a source checkout, not installed as an extension
        return Path(bpy.utils.user_resource("CONFIG", path=PACKAGE, create=True))


def load_cached() -> None:
    path = _cache_dir() / CACHE
    if path.is_file():
        try:
            build(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):     # an unreadable cache: the next refresh rewrites it
            clear()


def set_methods(text: str) -> None:
    """Build the controls from the backend's ``methods --json`` output and keep it for the next start."""
    try:
        table = json.loads(text)
        if not isinstance(table, dict) or not all("settings" in v for v in table.values()):
            raise ValueError("not a methods table")
    except ValueError as exc:
        raise UserError("avatarcine methods --json", f"unexpected output from the backend ({exc})") from None
    build(table)
    (_cache_dir() / CACHE).write_text(json.dumps(table))


def _parse_list(text: str, element: str, info: dict) -> list:
    cast = {"int": int, "float": float}.get(element, str)
    try:
        return [cast(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise UserError(info["flag"], f"expected {element} values separated by spaces, got {text!r}") from None


def _same(value, default, element: str) -> bool:
    """Equal to the default; floats to the precision Blender keeps them (float32)."""
    if element == "float" and value is not None and default is not None:
        values = value if isinstance(value, list) else [value]
        defaults = default if isinstance(default, list) else [default]
        return len(values) == len(defaults) and all(abs(a - b) <= 1e-6 * max(1.0, abs(b))
                                                    for a, b in zip(values, defaults))
    return value == default


def _text(value, element: str) -> str:
    return f"{value:.7g}" if element == "float" else str(value)


def command_flags(group, method: str) -> list[str]:
    """The ``generate`` flags for the settings in ``group`` that differ from the method's defaults."""
    flags = []
    for info in METHODS[method]["settings"]:
        element, is_list, optional = _kind(info)
        value = getattr(group, info["name"])
        if is_list:
            value = _parse_list(value, element, info)
        elif has_toggle(info) and not getattr(group, toggle_name(info)):
            value = None
        elif optional and value in ("", NONE_CHOICE):
            value = None
        if _same(value, info["default"], element):
            continue
        flag = info["flag"]
        if value is None:
            flags += [flag, "0"]                     # only reached where 0 means None (``has_toggle``)
        elif element == "bool":
            flags.append(flag if value else "--no-" + flag[2:])
        elif is_list:
            flags += [flag] + [_text(v, element) for v in value]
        else:
            flags += [flag, _text(value, element)]
    return flags


def method_items(self, context):
    items = [(name, name, info.get("summary", "")) for name, info in sorted(METHODS.items())]
    _ITEMS[:] = items or [(NONE_CHOICE, "(refresh the method list)", "")]
    return _ITEMS


_ITEMS: list[tuple[str, str, str]] = []     # Blender needs the strings of dynamic enum items kept alive


def draw(layout, scene, method: str) -> None:
    """The method's controls, one box per settings group, in the registry's order."""
    group = getattr(scene, scene_attribute(method), None)
    if group is None or method not in METHODS:
        return
    boxes: dict[str, bpy.types.UILayout] = {}
    for info in METHODS[method]["settings"]:
        name = info.get("group") or method
        if name not in boxes:
            boxes[name] = layout.box().column(align=True)
            boxes[name].label(text=name.capitalize())
        row = boxes[name].row(align=True)
        if has_toggle(info):
            row.prop(group, toggle_name(info), text="")
            sub = row.row(align=True)
            sub.active = getattr(group, toggle_name(info))
            sub.prop(group, info["name"])
        else:
            row.prop(group, info["name"])
