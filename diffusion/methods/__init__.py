"""Diffusion methods (one module each); they register themselves in ``diffusion.registry``."""
