"""Keyframing many frames at once through F-curves (``foreach_set``), not one ``keyframe_insert``
per value. Blender 4.4+ layered actions: ``Action.fcurve_ensure_for_datablock`` creates the slot,
layer, strip and channel bag as needed; older Blenders (4.2, 4.3) use the action's own F-curves."""

from __future__ import annotations

import bpy
import numpy as np

_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def key_property(id_data, data_path: str, frames: np.ndarray, values: np.ndarray, action_name: str) -> None:
    """Key ``id_data.<data_path>[i] = values[:, i]`` at ``frames`` with linear interpolation.

    ``values`` is (T,) for a scalar property or (T, n) for a vector one.
    """
    if id_data.animation_data is None:
        id_data.animation_data_create()
    action = id_data.animation_data.action
    if action is None:
        action = bpy.data.actions.new(action_name)
        id_data.animation_data.action = action
    values = np.asarray(values, dtype=np.float64)
    columns = values[:, None] if values.ndim == 1 else values
    frames = np.asarray(frames, dtype=np.float64)
    for index in range(columns.shape[1]):
        kwargs = {"index": index} if values.ndim > 1 else {}
        if hasattr(action, "fcurve_ensure_for_datablock"):
            fcurve = action.fcurve_ensure_for_datablock(id_data, data_path, **kwargs)
        else:
            fcurve = action.fcurves.find(data_path, **kwargs) or action.fcurves.new(data_path, **kwargs)
        fcurve.keyframe_points.clear()
        fcurve.keyframe_points.add(len(frames))
        co = np.stack([frames, columns[:, index]], 1).ravel()
        fcurve.keyframe_points.foreach_set("co", co)
        fcurve.keyframe_points.foreach_set("interpolation", np.full(len(frames), _LINEAR))
        fcurve.update()
