"""Temporal toolkit: cross-frame / window attention processors, overlapped windows, shared noise,
and the batch-overlapped denoising loop (Make-Your-Anchor Algorithm 1)."""
