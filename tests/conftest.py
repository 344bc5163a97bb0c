"""Shared test setup: offline hub, quiet progress, paths to the shared real data."""

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("AVATARCINE_QUIET", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
AMASS_SAMPLE = SHARED / "data" / "amass_smplh_sample.npz"


@pytest.fixture(scope="session")
def amass_sample() -> Path:
    if not AMASS_SAMPLE.is_file():
        pytest.fail(f"real AMASS sample missing: {AMASS_SAMPLE}")
    return AMASS_SAMPLE
