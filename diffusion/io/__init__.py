"""What diffusion reads and writes: passes folders, conditions framed alike, generations + run records."""
