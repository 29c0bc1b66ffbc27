"""Campaign files shipped with the package; `examples/` in the repository links here."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def example_campaign_path() -> Path:
    """The bank's Double-11 example campaign, as installed."""
    return Path(str(files(__package__).joinpath("double11-bank.yaml")))
