"""Fixtures for the reports tests: hand-built results frames (see report_frames.py for the scene)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from support.report_frames import MANIFEST, agreeing_run, clean_frame


@pytest.fixture
def agreeing() -> pd.DataFrame:
    """Every library identical to the reference: FGSM and random-start PGD (seeds 0, 1) at 3 eps."""
    return agreeing_run()


@pytest.fixture
def clean() -> pd.DataFrame:
    return clean_frame()


@pytest.fixture
def manifest() -> dict[str, Any]:
    return dict(MANIFEST)
