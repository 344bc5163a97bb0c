"""Passes -> frames: diffusion methods, building blocks, training, evaluation. Never imports bpy."""
