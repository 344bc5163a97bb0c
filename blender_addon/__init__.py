"""The avatarcine Blender extension: a thin UI over motion/ and render/."""
