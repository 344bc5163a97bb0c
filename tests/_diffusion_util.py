"""Shared fixtures of the diffusion tests: tiny models written once per session, synthetic passes."""

from __future__ import annotations

import pytest

from diffusion.synthetic_passes import keypoints, write_passes  # noqa: F401  (re-exported for the tests)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from diffusion.tiny import write_tiny_models

    # Named like the per-user cache folder, so AVATARCINE_CACHE=<parent> makes `--model tiny` find it.
    return write_tiny_models(tmp_path_factory.mktemp("cache") / "tiny-sd15-v1")
