"""Blender side: scene, avatars, cameras, condition passes. Imports numpy and bpy only."""
