"""data."""

__all__ = []
