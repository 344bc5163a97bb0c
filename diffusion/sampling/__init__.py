"""What every method shares at generation time: settings groups, noise, windows, the overlapped
denoising loop, guidance, background locking, latents <-> images, and the run itself."""
