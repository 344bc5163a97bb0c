"""Shared fixture of the diffusion tests: the tiny models, written once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from diffusion.tiny import write_tiny_models

    # Named like the per-user cache folder, so AVATARCINE_CACHE=<parent> makes `--model tiny` find it.
    return write_tiny_models(tmp_path_factory.mktemp("cache") / "tiny-sd15-v1")


@pytest.fixture(scope="module", autouse=False)
def one_thread():
    """Tiny models gain nothing from intra-op threads; one thread avoids OpenMP spin-waits on a busy CI."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
