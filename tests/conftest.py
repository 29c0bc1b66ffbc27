"""Fixtures every test suite may share: the example campaign, read once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from double11.campaign_file import parse_campaign
from double11.domain.campaign import Campaign

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PATH = ROOT / "examples" / "double11-bank.yaml"


@pytest.fixture(scope="session")
def example_path() -> Path:
    """The example campaign file the repository ships."""
    return EXAMPLE_PATH


@pytest.fixture(scope="session")
def example_text() -> str:
    """The example campaign file's text, for tests that derive broken or smaller campaigns."""
    return EXAMPLE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def example_campaign(example_text: str) -> Campaign:
    """The example campaign, parsed and validated (immutable, so shared by every test)."""
    return parse_campaign(example_text)
