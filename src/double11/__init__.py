"""double11: a real-time decision engine for a retail bank's Singles' Day campaign."""

__version__ = "0.1.0"
