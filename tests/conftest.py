"""Shared test setup: offline hub, quiet progress, paths to the shared real data."""

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("AVATARCINE_QUIET", "1")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_NAME = Path("data") / "amass_smplh_sample.npz"


def shared_candidates() -> list[Path]:
    """Where the shared real data may live: $AVATARCINE_SHARED_DIR, then `shared/` in the
    checkout or beside any folder above it (the workplace keeps it beside the clone)."""
    found = [Path(os.environ["AVATARCINE_SHARED_DIR"])] if os.environ.get("AVATARCINE_SHARED_DIR") else []
    return found + [folder / "shared" for folder in (REPO, *REPO.parents)]


@pytest.fixture(scope="session")
def amass_sample() -> Path:
    for shared in shared_candidates():
        if (shared / SAMPLE_NAME).is_file():
            return shared / SAMPLE_NAME
    pytest.skip(f"real AMASS sample {SAMPLE_NAME} not found in any of "
                f"{', '.join(map(str, shared_candidates()))}; set AVATARCINE_SHARED_DIR")
